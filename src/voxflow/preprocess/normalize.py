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


def white_matter_peak(data: np.ndarray, mask: np.ndarray, bins: int = 256) -> float:
    """The mode of the intensity histogram inside ``mask`` (smoothed, between a fifth of the
    99.5th percentile and that percentile): normal-appearing white matter, the largest tissue
    of a brain MR image, in T1-, T2-, PD-weighted and FLAIR images alike (the idea of
    WhiteStripe, Shinohara 2014). The lower bound keeps a mask that caught background noise
    or dark CSF from putting the mode there."""
    from scipy import ndimage

    values = data[mask]
    if values.size < 100:
        raise VoxflowError("cannot find the white-matter peak: fewer than 100 voxels in the mask")
    hi = float(np.percentile(values, 99.5))
    lo = 0.2 * hi
    if not np.isfinite(hi) or hi <= 0 or np.ptp(values) == 0:
        raise VoxflowError("cannot find the white-matter peak: the image is constant or not finite")
    counts, edges = np.histogram(values, bins=bins, range=(lo, hi))
    smooth = ndimage.gaussian_filter1d(counts.astype(float), 2.0)
    k = int(np.argmax(smooth))
    peak = float((edges[k] + edges[k + 1]) / 2)
    if peak <= 0:
        raise VoxflowError("cannot normalise: the white-matter peak is not positive")
    return peak


def peak_normalise(data: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Intensity relative to the white-matter peak, in tenths: 10 * (x / peak - 1), float32.
    WM is 0 and a lesion 1.4 times as bright as WM is 4, whatever the scanner's scale and
    however much CSF or lesion the image holds (what a Z-score depends on); so phantoms
    calibrated in WM ratios and real scans land on one scale."""
    return (10.0 * (data / white_matter_peak(data, mask) - 1.0)).astype(np.float32)
