"""Crop volumes to the bounding box of the object (head/brain), keeping world geometry."""

from __future__ import annotations

import numpy as np

from voxflow.errors import VoxflowError


def foreground(data: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Foreground mask: voxels above ``fraction`` of the 99th intensity percentile."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        raise VoxflowError("cannot find the object: the image has no finite voxels")
    return data > fraction * np.percentile(finite, 99)


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...]:
    """Slices of the smallest box holding ``mask`` (plus ``margin`` voxels, clipped)."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        raise VoxflowError("cannot crop: the object mask is empty (blank image?)")
    lo = np.maximum(idx.min(0) - margin, 0)
    hi = np.minimum(idx.max(0) + 1 + margin, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))


def crop_affine(affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """Affine of the cropped array: the origin moves to the box's first voxel."""
    out = affine.copy()
    out[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box[:3]], float) + affine[:3, 3]
    return out


def centred_box(centre_vox: np.ndarray, size: list[int] | tuple[int, ...]) -> tuple[slice, ...]:
    """A box of ``size`` voxels centred on ``centre_vox`` (may reach outside the image; see
    :func:`crop_padded`)."""
    lo = np.round(np.asarray(centre_vox, float) - np.asarray(size) / 2.0).astype(int)
    return tuple(slice(int(a), int(a) + int(n)) for a, n in zip(lo, size, strict=True))


def crop_padded(data: np.ndarray, box: tuple[slice, ...], fill: float = 0) -> np.ndarray:
    """``data[box]`` where the box may reach outside the array: outside voxels get ``fill``."""
    out = np.full([s.stop - s.start for s in box], fill, dtype=data.dtype)
    src, dst = [], []
    for s, n in zip(box, data.shape, strict=True):
        a, b = max(s.start, 0), min(s.stop, n)
        if a >= b:
            return out
        src.append(slice(a, b))
        dst.append(slice(a - s.start, b - s.start))
    out[tuple(dst)] = data[tuple(src)]
    return out
