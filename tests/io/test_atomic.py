import pytest

from voxflow.io.atomic import atomic_path, write_text_atomic


def test_atomic_write_and_no_leftovers(tmp_path):
    target = tmp_path / "sub" / "table.tsv"
    write_text_atomic(target, "a\tb\n")
    assert target.read_text() == "a\tb\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.tsv"]


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "img.nii.gz"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz") and tmp.parent == tmp_path
        tmp.write_bytes(b"partial")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_failed_overwrite_keeps_old_file(tmp_path):
    target = tmp_path / "x.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("new")
        raise RuntimeError
    assert target.read_text() == "old"
