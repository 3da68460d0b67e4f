"""Resample volumes to a target voxel size, keeping the field of view's centre and orientation.

As nnU-Net does, a model trained at one spacing sees data at that spacing: cohorts at another
resolution (0.5 mm MICCAI 2008, 1 mm open_ms_data, 3 mm demo phantoms) are resampled before
training or inference. Images use linear interpolation; label maps are resampled as fractions
(one per label value) and each voxel takes the label of the largest fraction (binary masks:
fraction >= 0.5), so they keep their values without the blockiness of nearest neighbour.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.images import Volume
from voxflow.lazy import lazy_import

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build


def resampled_grid(
    shape: Sequence[int], affine: np.ndarray, spacing: Sequence[float]
) -> tuple[tuple[int, ...], np.ndarray, np.ndarray, np.ndarray]:
    """The grid of voxel size ``spacing`` over (about) the same extent, centred on the same
    point: its shape and affine, and the scale and offset mapping new indices to old ones
    (old = scale * new + offset)."""
    old = np.linalg.norm(affine[:3, :3], axis=0)
    new = np.asarray(spacing, float)
    if new.shape != (3,) or np.any(new <= 0):
        raise VoxflowError(f"target spacing must be 3 positive values (mm), got {spacing}")
    shape3 = np.asarray(shape[:3], float)
    new_shape = np.maximum(np.round(shape3 * old / new), 1)
    scale = new / old
    offset = (shape3 - 1) / 2 - scale * (new_shape - 1) / 2
    index_map = np.eye(4)
    index_map[:3, :3] = np.diag(scale)
    index_map[:3, 3] = offset
    return tuple(int(n) for n in new_shape), affine @ index_map, scale, offset


def resample(
    vol: Volume,
    spacing: float | Sequence[float],
    label: bool | str = False,
    antialias: bool = False,
) -> Volume:
    """``vol`` on a grid of voxel size ``spacing`` (mm); unchanged if already there.
    ``label=True`` treats ``vol`` as a binary mask (nonzero = 1); ``label="multi"`` as a label
    map whose values are all kept (largest resampled fraction wins). ``antialias`` (images):
    where the grid gets coarser, a Gaussian pre-filter first widens the point spread to the
    new voxel size (FWHM), so a 1 mm scan at 3 mm looks like a 3 mm acquisition (partial
    volume) rather than every third sample of it."""
    spacing = (float(spacing),) * 3 if np.isscalar(spacing) else tuple(map(float, spacing))
    if np.allclose(vol.spacing[:3], spacing, atol=1e-3):
        return vol
    shape, affine, scale, offset = resampled_grid(vol.shape, vol.affine, spacing)
    sigma = np.sqrt(np.clip(scale**2 - 1, 0, None)) / 2.355 if antialias and not label else None

    def interpolate(data: np.ndarray) -> np.ndarray:
        data = data.astype(np.float32)
        if sigma is not None and np.any(sigma > 0):
            data = ndimage.gaussian_filter(data, sigma, mode="nearest")
        return ndimage.affine_transform(
            data,
            scale,
            offset=offset,
            output_shape=shape,
            order=1,
            mode="nearest",
        )

    if label == "multi":
        return Volume(argmax_labels(vol.data, interpolate), affine, vol.path)
    if label:
        out = (interpolate(vol.data > 0) >= 0.5).astype(vol.data.dtype)
    else:
        out = interpolate(vol.data)
    return Volume(out, affine, vol.path)


def argmax_labels(data: np.ndarray, interpolate: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Resample a label map through ``interpolate`` as one fraction per value; argmax."""
    values = np.unique(data)
    best = np.full(interpolate(data == values[0]).shape, -1.0, np.float32)
    out = np.zeros(best.shape, data.dtype)
    for v in values:
        frac = interpolate(data == v)
        better = frac > best
        out[better], best[better] = v, frac[better]
    return out


def resample_to_grid(
    data: np.ndarray,
    affine: np.ndarray,
    shape: Sequence[int],
    target_affine: np.ndarray,
    order: int = 1,
    cval: float = 0.0,
) -> np.ndarray:
    """``data`` (on ``affine``) sampled at the voxel centres of another grid (``shape``,
    ``target_affine``), both RAS; outside the source grid -> ``cval``."""
    index_map = np.linalg.inv(affine) @ target_affine
    return ndimage.affine_transform(
        data.astype(np.float32),
        index_map[:3, :3],
        offset=index_map[:3, 3],
        output_shape=tuple(shape),
        order=order,
        mode="constant",
        cval=cval,
    )


def resize_slices(slices: np.ndarray, size: int) -> np.ndarray:
    """(n, H, W) -> (n, size, size), bilinear with antialiasing (deterministic on CPU)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(slices, np.float32))[:, None]
    out = F.interpolate(t, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return out[:, 0].numpy()


def resize_volume(data: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """``data`` (3D) resized to ``shape`` by linear interpolation between voxel centres, each
    shrunk axis Gaussian-pre-filtered (sigma = (factor - 1) / 2 voxels) against aliasing; every
    axis keeps its direction (no reorientation)."""
    if data.ndim != 3 or len(shape) != 3:
        raise VoxflowError(f"resize_volume: needs 3D data and shape, got {data.shape} -> {shape}")
    data = np.asarray(data, np.float32)
    factors = np.asarray(data.shape, float) / np.asarray(shape, float)
    sigma = np.maximum((factors - 1) / 2, 0)
    if np.any(sigma > 0):
        data = ndimage.gaussian_filter(data, sigma, mode="nearest")
    coords = np.meshgrid(
        *[(np.arange(n) + 0.5) * f - 0.5 for n, f in zip(shape, factors, strict=True)],
        indexing="ij",
        sparse=False,
    )
    return ndimage.map_coordinates(data, coords, order=1, mode="nearest").astype(np.float32)
