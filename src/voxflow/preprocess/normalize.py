"""Intensity normalisation."""

from __future__ import annotations

import numpy as np

from voxflow.errors import VoxflowError


def zscore(data: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(x - mean) / std with statistics inside ``mask`` (all voxels if None); float32."""
    values = data[mask] if mask is not None else data
    if values.size == 0:
        raise VoxflowError("cannot normalise: the mask selects no voxels")
    std = float(values.std())
    if not np.isfinite(std) or std == 0:
        raise VoxflowError("cannot normalise: the image is constant or not finite")
    return ((data - float(values.mean())) / std).astype(np.float32)
