import pytest

from voxflow.errors import VoxflowError
from voxflow.io.layouts.gwr import read_cohort


def make_patient(root, name, skip=()):
    folder = root / name
    (folder / "ct").mkdir(parents=True)
    for f in ("mr.nii.gz", "mr_labels.nii.gz"):
        if f not in skip:
            (folder / f).write_bytes(b"")
    return folder


def test_reads_patients_in_order(tmp_path):
    make_patient(tmp_path, "b02")
    make_patient(tmp_path, "a01")
    (tmp_path / "outcomes.csv").write_text("patient,poor_outcome\n")
    cases = read_cohort(tmp_path)
    assert [c.patient for c in cases] == ["a01", "b02"]
    assert cases[0].mr_labels == tmp_path / "a01" / "mr_labels.nii.gz"


def test_missing_file_names_the_patient(tmp_path):
    make_patient(tmp_path, "a01", skip=("mr_labels.nii.gz",))
    with pytest.raises(VoxflowError, match="a01: missing mr_labels.nii.gz"):
        read_cohort(tmp_path)


def test_empty_or_absent_root(tmp_path):
    with pytest.raises(VoxflowError, match="no patient folders"):
        read_cohort(tmp_path)
    with pytest.raises(VoxflowError, match="not found"):
        read_cohort(tmp_path / "nope")
