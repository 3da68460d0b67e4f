"""Run the real Snakemake workflow on a tiny config in a temporary copy of the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
COPY = ["Snakefile", "workflow", "config", "envs", "profiles", "src"]
TINY = {
    "seed": 42,
    "device": "cpu",
    "studies": [],
    "brain_phantom": {"subjects": 2, "voxel_mm": 6.0},
}


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; on failure with ``check`` show its output."""
    proc = subprocess.run(
        [SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True, timeout=900
    )
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def make_workdir(dest: Path, config: dict | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config or TINY))
    return dest


@pytest.fixture(scope="session")
def snakemake():
    """``snakemake(workdir, *args, check=True)`` runs the real CLI and returns the process."""
    return _snakemake


@pytest.fixture
def workdir(tmp_path) -> Path:
    return make_workdir(tmp_path / "wf")


@pytest.fixture(scope="module")
def finished_workdir(tmp_path_factory) -> Path:
    """A workdir in which the whole default target has been built once."""
    wd = make_workdir(tmp_path_factory.mktemp("wf-done"))
    _snakemake(wd)
    return wd
