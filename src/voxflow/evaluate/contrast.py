"""Tissue contrast of a multi-channel MR scan: median CSF, GM and lesion intensity relative to WM.

Used to calibrate the MS phantom against a real scan (and to measure the phantom the same way):
the brain is split into CSF, GM and WM by a 3-class Gaussian mixture on the log intensities of
all channels (lesions and a 3-voxel margin around them left out), each class is kept where its
posterior exceeds 0.95, and every channel's class medians are divided by its WM median. Only
the intensity statistics inside the lesion mask are used, not its shape or position.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from voxflow.errors import VoxflowError

CLASSES = ("csf", "gm", "wm")


def tissue_classes(
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    exclude: np.ndarray | None = None,
    seed: int = 0,
    max_samples: int = 200_000,
) -> dict[str, np.ndarray]:
    """Boolean CSF/GM/WM masks (posterior > 0.95) from a Gaussian mixture of log intensities.

    Classes are named by their mean in ``images``' first channel relative to the others: the
    WM class is the one whose mean is highest in T1-weighted images, so pass the T1-weighted
    channel first (``mprage``); lowest = CSF."""
    from scipy import ndimage
    from sklearn.mixture import GaussianMixture

    brain = ndimage.binary_erosion(brain, iterations=2)
    if exclude is not None:
        brain &= ~ndimage.binary_dilation(exclude, iterations=3)
    if brain.sum() < 1000:
        raise VoxflowError("tissue classes: fewer than 1000 brain voxels; is the brain mask empty?")
    x = np.log1p(np.stack([np.clip(v[brain], 0, None) for v in images.values()], axis=1))
    x -= np.median(x, axis=0)
    step = max(1, len(x) // max_samples)
    gmm = GaussianMixture(3, random_state=seed).fit(x[::step])
    order = np.argsort(gmm.means_[:, 0])  # dark -> bright in the first (T1-weighted) channel
    post = gmm.predict_proba(x)
    out = {}
    for name, k in zip(CLASSES, order, strict=True):
        mask = np.zeros(brain.shape, bool)
        mask[brain] = post[:, k] > 0.95
        out[name] = mask
    return out


def contrast_table(
    images: Mapping[str, np.ndarray], classes: Mapping[str, np.ndarray], lesion: np.ndarray
) -> dict[str, dict[str, float]]:
    """channel -> {csf, gm, wm(=1), lesion, lesion_p10, lesion_p90}: medians relative to WM."""
    if not lesion.any():
        raise VoxflowError("contrast table: the lesion mask is empty")
    table = {}
    for ch, img in images.items():
        wm = float(np.median(img[classes["wm"]]))
        if wm <= 0:
            raise VoxflowError(f"contrast table: {ch} has a non-positive WM median")
        row = {name: float(np.median(img[m])) / wm for name, m in classes.items()}
        row["lesion"] = float(np.median(img[lesion])) / wm
        row["lesion_p10"], row["lesion_p90"] = (
            float(v) / wm for v in np.percentile(img[lesion], [10, 90])
        )
        table[ch] = row
    return table


def measure_contrast(
    images: Mapping[str, np.ndarray],
    lesion: np.ndarray,
    brain: np.ndarray | None = None,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Tissue classes from all channels, then :func:`contrast_table` (``brain`` defaults to
    every channel > 0, right for skull-stripped scans)."""
    if brain is None:
        brain = np.logical_and.reduce([v > 0 for v in images.values()])
    return contrast_table(images, tissue_classes(images, brain, lesion, seed), lesion)
