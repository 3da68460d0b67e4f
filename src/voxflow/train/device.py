"""Device selection and determinism settings."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from voxflow.errors import VoxflowError

log = logging.getLogger(__name__)


def select_device(preference: str = "auto") -> torch.device:
    """``auto``: CUDA if available (respecting ``CUDA_VISIBLE_DEVICES``) else CPU; or force one."""
    if preference not in ("auto", "cpu", "cuda"):
        raise VoxflowError(f"device: '{preference}' is not one of auto, cpu, cuda")
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        dev = torch.device("cuda")
        log.info(
            "device: cuda (%s; %d visible)",
            torch.cuda.get_device_name(dev),
            torch.cuda.device_count(),
        )
        return dev
    if preference == "cuda":
        raise VoxflowError(
            "device: cuda was requested but torch.cuda.is_available() is False "
            f"(torch {torch.__version__}); install a CUDA build of torch or set device: auto"
        )
    return torch.device("cpu")


def configure_determinism(device: torch.device, threads: int | None = None) -> None:
    """Deterministic kernels on CPU (bit-identical reruns); fast cuDNN autotuning on CUDA."""
    if threads:
        torch.set_num_threads(int(threads))
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = True


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (all CUDA devices too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: seed NumPy and ``random`` from torch's worker seed."""
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
