import subprocess
import sys

from voxflow.cli import main
from voxflow.io.images import read_image


def test_help_lists_subcommands():
    out = subprocess.run(
        [sys.executable, "-m", "voxflow.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "phantom" in out
    out = subprocess.run(
        [sys.executable, "-m", "voxflow.cli", "phantom", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--voxel-mm" in out and "--subject" in out


def test_phantom_writes_subject(tmp_path):
    assert main(["phantom", "brain", str(tmp_path / "s"), "--voxel-mm", "6"]) == 0
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == ["csf.nii.gz", "gm.nii.gz", "mask.nii.gz", "t1.nii.gz", "wm.nii.gz"]
    assert read_image(tmp_path / "s" / "gm.nii.gz").spacing == (6.0, 6.0, 6.0)


def test_user_error_exit_1(tmp_path, capsys):
    assert main(["phantom", "brain", str(tmp_path / "s"), "--voxel-mm", "20"]) == 1
    err = capsys.readouterr().err
    assert "ERROR" in err and "voxel_mm=20.0 must be within" in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
