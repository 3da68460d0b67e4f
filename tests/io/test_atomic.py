import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from voxflow.io.atomic import atomic_path, write_bytes_atomic, write_text_atomic
from voxflow.io.images import write_nifti


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


# ---- a full disk during a NIfTI write ------------------------------------------------------


def _image(mib: float, seed: int = 0) -> np.ndarray:
    """Random float32 voxels (incompressible) of about ``mib`` MiB."""
    n = int(mib * 2**20 / 4 / 64 / 64)
    return np.random.default_rng(seed).random((64, 64, n), dtype=np.float32)


class _FillingFile:
    """A file opened for writing on a disk with ``room`` bytes left: writes up to that, then
    fails with ENOSPC as the OS does."""

    def __init__(self, f, room: int, written: dict, path: Path) -> None:
        self.f, self.room, self.written, self.path = f, room, written, path

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        n = min(len(view), self.room)
        self.f.write(view[:n])
        self.f.flush()
        self.room -= n
        self.written[self.path] = self.written.get(self.path, 0) + n
        if n < len(view):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return n

    def close(self) -> None:
        self.f.close()

    def __enter__(self) -> "_FillingFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.mark.parametrize("existing", [False, True])
def test_enospc_part_way_through_a_nifti_write_leaves_no_partial_output(
    tmp_path, monkeypatch, existing
):
    target = tmp_path / "seg.nii.gz"
    old = write_nifti(target, _image(0.05), np.eye(4)).read_bytes() if existing else None
    room, written = 100_000, {}
    real_open = Path.open

    def open_on_full_disk(self, mode="r", *args, **kwargs):
        f = real_open(self, mode, *args, **kwargs)
        return _FillingFile(f, room, written, self) if "w" in mode else f

    monkeypatch.setattr(Path, "open", open_on_full_disk)
    with pytest.raises(OSError) as err:
        write_nifti(target, _image(1.0, seed=1), np.eye(4))
    monkeypatch.undo()

    assert err.value.errno == errno.ENOSPC
    assert str(err.value) == f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}: '{target}'"
    # the write really got part way, into a temporary sibling, not the target
    (tmp,) = written
    assert written[tmp] == room and tmp.parent == tmp_path and tmp != target
    assert not tmp.exists()
    if existing:
        assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]
        assert target.read_bytes() == old  # the previous output, byte for byte
    else:
        assert list(tmp_path.iterdir()) == []


def _mount_small_tmpfs(where: Path, size: str) -> str | None:
    """Mount a tmpfs of ``size`` at ``where``; the reason it cannot be done, or None."""
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("mount") is None:
        return "no mount command"
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    return None if res.returncode == 0 else f"{' '.join(cmd)} failed: {res.stderr.strip()}"


def test_real_full_disk_during_a_nifti_write_leaves_no_partial_output(tmp_path):
    disk = tmp_path / "small_disk"
    disk.mkdir()
    reason = _mount_small_tmpfs(disk, "1m")
    if reason:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(
            f"cannot mount a 1 MiB tmpfs ({reason}); "
            "test_enospc_part_way_through_a_nifti_write_leaves_no_partial_output covers this"
        )
    try:
        target = disk / "seg.nii"
        old = write_nifti(target, _image(0.05), np.eye(4)).read_bytes()
        big = _image(2.0, seed=1)
        assert big.nbytes > 2 * os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with pytest.raises(OSError) as err:
            write_nifti(target, big, np.eye(4))
        assert err.value.errno == errno.ENOSPC and err.value.filename == str(target)
        assert sorted(p.name for p in disk.iterdir()) == [target.name]
        assert target.read_bytes() == old
        write_nifti(disk / "small.nii", _image(0.05), np.eye(4))  # the space was given back
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_outputs_get_the_umask_mode_not_mkstemp_0600(tmp_path):
    old = os.umask(0o022)
    os.umask(old)
    out = write_bytes_atomic(tmp_path / "a.tsv", b"x\n")
    assert out.stat().st_mode & 0o777 == 0o666 & ~old
