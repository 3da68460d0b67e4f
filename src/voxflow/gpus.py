"""How many GPUs a training/inference job holds, decided without importing torch.

The workflow declares this as each GPU rule's ``gpu`` resource: Snakemake's ``--resources
gpu=N`` then limits how many of those jobs share the GPU(s), while on a CPU-only machine the
jobs hold none, so ``--resources gpu=1`` does not serialise CPU trainings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")


def visible_cuda_gpus(proc_dir: Path = NVIDIA_PROC) -> int:
    """NVIDIA GPUs this process may use: the driver's GPUs, narrowed by CUDA_VISIBLE_DEVICES."""
    if proc_dir.is_dir():
        present = len(list(proc_dir.iterdir()))
    elif shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(
                ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        present = sum(line.startswith("GPU ") for line in out.splitlines())
    else:
        present = 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return present
    ids = [v for v in visible.split(",") if v.strip()]
    if not ids or ids[0].strip() == "-1":
        return 0
    return min(present, len(ids))


def gpus_per_job(device: str, visible: int | None = None) -> int:
    """The ``gpu`` resource of a GPU-capable job run on this machine: 1 on CUDA, else 0.

    ``device`` is the config's ``auto``/``cpu``/``cuda``; ``visible`` defaults to
    :func:`visible_cuda_gpus`. (Cluster profiles set the resource per rule themselves: the
    submitting host's GPUs say nothing about the nodes'.)
    """
    if device == "cpu":
        return 0
    if device == "cuda":
        return 1
    if visible is None:
        visible = visible_cuda_gpus()
    return 1 if visible > 0 else 0
