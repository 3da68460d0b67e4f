"""One seed in the config drives everything: stable sub-seeds for every purpose.

Torch-side seeding (global RNGs, DataLoader workers) lives in :mod:`voxflow.train.device`.
"""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(seed: int, *keys: object) -> int:
    """Stable 32-bit seed from a base seed and any keys (not Python's salted ``hash``)."""
    text = "\x1f".join([str(int(seed)), *map(str, keys)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")


def rng(seed: int, *keys: object) -> np.random.Generator:
    """A NumPy generator for one purpose (e.g. ``rng(seed, "brain", "sub-001")``)."""
    return np.random.default_rng(derive_seed(seed, *keys))
