"""One seed in the config drives everything: derive stable sub-seeds and seed every RNG."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np


def derive_seed(seed: int, *keys: object) -> int:
    """Stable 32-bit seed from a base seed and any keys (not Python's salted ``hash``)."""
    text = "\x1f".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def rng(seed: int, *keys: object) -> np.random.Generator:
    """A NumPy generator for one purpose (e.g. ``rng(seed, "brain", "sub-001")``)."""
    return np.random.default_rng(derive_seed(seed, *keys))


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global RNGs (all CUDA devices too)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))


def seed_worker(worker_id: int) -> None:
    """``DataLoader(worker_init_fn=...)``: seed NumPy and ``random`` from torch's worker seed."""
    import torch

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)
