"""Copies of the workflow for the workflow and cluster tests, and their tiny configs."""

from __future__ import annotations

import os
import re
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


RULE = re.compile(r"^rule (\w+):\n((?:[ \t]+.*\n|\n)+)", re.M)


def rule_bodies(repo: Path = REPO) -> list[tuple[str, Path, str]]:
    """(rule name, .smk file, indented body) of every rule under workflow/rules/, sorted."""
    return [
        (m.group(1), smk, m.group(2))
        for smk in sorted((repo / "workflow" / "rules").glob("*.smk"))
        for m in RULE.finditer(smk.read_text())
    ]


def run_command(
    cmd: list[str], cwd: Path, check: bool = True, env_extra: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in ``cwd``; on failure with ``check`` fail the test showing its output."""
    env = {**os.environ, **(env_extra or {})}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900, env=env)
    if check and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def _snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run snakemake on 2 cores in ``workdir``; on failure with ``check`` show its output."""
    return run_command([SNAKEMAKE, "--cores", "2", *args], workdir, check)


def make_workdir(
    dest: Path, config: dict | None = None, *, repo_config: bool = False, extra: tuple = ()
) -> Path:
    """Copy the workflow into ``dest`` with ``config`` (default TINY) as its config.yaml.

    ``repo_config`` keeps the repository's own config.yaml (the demo preset); ``extra`` names
    more top-level paths to copy (e.g. run.sh). Tests never run in the checkout itself, so
    what a demo left there (results/, resources/, .snakemake/, logs/) cannot change them.
    """
    dest.mkdir(parents=True, exist_ok=True)
    for name in (*COPY, *extra):
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    if not repo_config:
        (dest / "config" / "config.yaml").write_text(yaml.safe_dump(config or TINY))
    return dest


# what every one-study tiny config shares: seed, CPU, one 6 mm brain phantom for the QC figure
TINY_STUDY = {"seed": 42, "device": "cpu", "brain_phantom": {"subjects": 1, "voxel_mm": 6.0}}
TINY_QQ = {
    **TINY_STUDY,
    "studies": ["qq"],
    "qq": {
        "cohort": {"layout": "qq", "root": ""},
        "phantom": {"subjects": 5, "snr": 100, "qsm_noise_ppm": 0.005},
        "n_echoes": 8,
        "split": {"test": 2, "val": 1},
        "crop": [16, 16, 8],
        "models": ["resnet3d", "cnn3d"],
        "patch_size": [8, 8, 4],
        "samples_per_volume": 2,
        "batch_size": 2,
        "model": {"stem_filters": 4, "block_filters": [4, 8]},
        "train": {"epochs": 2, "lr": 1.0e-3, "patience": 0},
        "fit": {"enabled": True, "method": "lm", "snr": 100, "qsm_sigma_ppm": 0.005},
    },
}
TINY_GWR = {
    **TINY_STUDY,
    "studies": ["gwr"],
    "register": {
        "level_spacing_mm": [6.0, 3.0],
        "smoothing_sigmas_mm": [3.0, 0.0],
        "iterations": [60, 40],
        "sampling_percentage": [0.5, 0.25],
    },
    "gwr": {
        "cohort": {"layout": "gwr", "root": ""},
        "phantom": {
            "patients": 4,
            "mr_voxel_mm": 3.0,
            "ct_pixel_mm": 3.0,
            "ct_slice_mm": 6.0,
            "ct_fov_mm": 210.0,
            "ct_length_mm": 168.0,
        },
        "val_fraction": 0.25,
        "spacing_mm": [4.0, 4.0, 6.0],
        "models": ["unet3d", "nnunet"],
        "patch_size": [16, 16, 8],
        "patch_overlap": [4, 4, 2],
        "samples_per_volume": 2,
        "batch_size": 2,
        "model": {"base_filters": 4, "depth": 2},
        "augment": {"flip": 0.5},
        "train": {"epochs": 2, "lr": 1.0e-3, "patience": 0},
        "nnunet": {"epochs": 1, "iterations_per_epoch": 2, "val_iterations": 1, "mirroring": False},
    },
}
TINY_L3 = {
    **TINY_STUDY,
    "studies": ["l3"],
    "l3": {
        "cohort": {"layout": "l3", "root": ""},
        "phantom": {"patients": 6, "matrix": 48, "pixel_mm": 9.0},
        "image_size": 32,
        "folds": 2,
        "inner_val_fraction": 0.34,
        "arms": ["proposed", "control"],
        "model": {"depth": 10, "widen_factor": 0.125},
        "train": {"epochs": 1, "optimizer": "sgd"},
        # two workers per study: two Snakemake jobs on one journal
        "tune": {"trials": 3, "workers": 2, "sampler": "gp", "startup_trials": 2},
        "decode": {"smooth_slices": 3, "threshold": 0.5},
    },
}
TINY_MGMT = {
    **TINY_STUDY,
    "train_threads": 1,  # two 1-thread trainings side by side on the 2 cores
    "studies": ["mgmt"],
    "mgmt": {
        "cohort": {"layout": "rsna-miccai-2021", "root": ""},
        "phantom": {
            "patients": 18,
            "effect": 3.0,
            "voxel_mm": 3.0,
            "pixel_min_mm": 3.5,
            "pixel_max_mm": 4.0,
            "slice_min_mm": 5.0,
            "slice_max_mm": 8.0,
        },
        "exclude": ["00109", "00123", "00709"],
        "preprocess": {"mode": "paper", "size": 16, "slices_2d": 4, "image_size_2d": 16},
        "shards": 2,
        "split": {"holdout": 0.25, "folds": 2, "random_state": 42},
        "models": {
            "2d": {"depth": 10, "widen_factor": 0.125, "batch_size": 8},
            "3d": {"depth": 10, "widen_factor": 0.125, "batch_size": 4},
        },
        "augment": {"flip": 0.5},
        "train": {"epochs": 1, "lr": 1.0e-3},
        "bootstrap": 200,
    },
}


def assert_phantom_passes_check(workdir: Path, study: str) -> None:
    """The phantom cohort a run wrote (the real dataset's layout) passes ``voxflow check``
    under the run's own config, as a real cohort must before the workflow runs on it."""
    voxflow = str(Path(sys.executable).with_name("voxflow"))
    root = f"resources/{study}/phantom"
    proc = run_command([voxflow, "check", root, "--study", study], workdir, check=False)
    assert proc.returncode == 0, proc.stderr
    assert f"{root}: {study} cohort of" in proc.stderr and "no problems" in proc.stderr
