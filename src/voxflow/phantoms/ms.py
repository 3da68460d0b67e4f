"""MS-lesion phantom: multi-contrast MR with exact lesion masks, in the ISBI 2015 layout.

Built on :mod:`voxflow.phantoms.brain`. Per subject (seeded): 5-40 ellipsoidal lesions with axes
of 2-15 mm, kept only where WM > 0.5; about 40 % periventricular (centre within 5 mm of a
ventricle, long axis along the ventricle's normal: "Dawson fingers"; axes up to 24 mm, for the
confluent periventricular lesions real scans show: patient26's largest is 2.7 ml, and
periventricular volume is the largest share in Pongratz 2023), about 10 % infratentorial, the rest
subcortical/juxtacortical. Each contrast is the tissue mixture of relative intensities
(WM = 1). So that a network trained only on phantoms meets real scans as one more draw
(SynthSeg-style domain randomisation, bounded by physics), every subject draws its own CSF, GM
and lesion/WM ratio per channel from ``CONTRASTS``: ranges that span ../shared/specs/
phantom-physics.md §B1 and the ratios measured on the real open_ms_data patient26 (README,
"Study ms"). Each lesion scales the subject's lesion contrast by a factor drawn from
``lesion_spread`` (real lesions vary: patient26's 10th-90th percentiles span about half to 1.5
times the median contrast). Lesion borders are partial-volumed, the images carry an unlabelled
hyperintense periventricular rim and a mild tissue texture, a smooth multiplicative bias field,
a per-channel slice-thickness blur along a random axis (ISBI 2015's T2/PD/FLAIR are 3 mm
slices) and Rician noise over a wide SNR range (a 1 mm scan averaged to the demo's 3 mm voxels
has several times the SNR of its source). The lesion mask used to build the images is written
as the ground truth (``mask1``); ``mask2`` is a second "rater" that erodes or dilates some
lesions by one voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.images import write_nifti
from voxflow.lazy import lazy_import
from voxflow.phantoms.brain import (
    BrainAnatomy,
    BrainPhantomConfig,
    Template,
    make_brain,
    map_subjects,
    worker_template,
)
from voxflow.seeding import rng

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build

CHANNELS = ("flair", "mprage", "pd", "t2")
# Ranges of the per-subject intensities relative to WM = 1: each spans §B1's value (and its
# lesion range) and what patient26 measures (README table; open_ms_data has no PD, so PD keeps
# §B1 with the same relative width). CSF's upper FLAIR end allows for the partial-volumed CSF a
# real 1 mm scan shows.
CONTRASTS = {
    "flair": {"csf": (0.05, 0.35), "gm": (1.2, 1.45), "lesion": (1.2, 2.8)},
    "mprage": {"csf": (0.02, 0.35), "gm": (0.55, 0.7), "lesion": (0.6, 0.85)},
    "pd": {"csf": (1.25, 1.55), "gm": (1.1, 1.25), "lesion": (1.2, 1.45)},
    "t2": {"csf": (2.0, 3.6), "gm": (1.35, 1.7), "lesion": (1.6, 3.3)},
}


@dataclass(frozen=True)
class MSPhantomConfig:
    """Lesion burden and image quality of the MS phantom."""

    lesions_min: int = 5
    lesions_max: int = 40
    axis_min_mm: float = 2.0
    axis_max_mm: float = 15.0
    periventricular_axis_max_mm: float = 24.0
    periventricular: float = 0.4
    infratentorial: float = 0.1
    bias: float = 0.15
    snr_min: float = 20.0
    snr_max: float = 120.0
    wm_intensity: float = 1000.0
    lesion_spread: tuple[float, float] = (0.4, 1.5)
    rim: float = 0.5
    slice_mm: tuple[float, float] = (1.0, 3.0)

    def __post_init__(self) -> None:
        if not 1 <= self.lesions_min <= self.lesions_max:
            raise VoxflowError("ms phantom: need 1 <= lesions_min <= lesions_max")
        if not 0 < self.axis_min_mm <= min(self.axis_max_mm, self.periventricular_axis_max_mm):
            raise VoxflowError(
                "ms phantom: need 0 < axis_min_mm <= axis_max_mm, periventricular_axis_max_mm"
            )
        if self.periventricular + self.infratentorial > 1:
            raise VoxflowError("ms phantom: periventricular + infratentorial must be <= 1")


@dataclass
class MSSubject:
    """One phantom subject: images per channel, exact lesion mask, second-rater mask."""

    images: dict[str, np.ndarray]
    mask1: np.ndarray
    mask2: np.ndarray
    affine: np.ndarray
    lesion_ratio: dict[str, float]
    n_lesions: int


def _rotation(g: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(g.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))


def _frame_from(axis: np.ndarray, g: np.random.Generator) -> np.ndarray:
    """Orthonormal frame whose first column is ``axis``."""
    a = axis / np.linalg.norm(axis)
    other = np.linalg.qr(np.column_stack([a, g.normal(size=(3, 2))]))[0]
    other[:, 0] = a
    return other


def place_lesions(anat: BrainAnatomy, seed: int, cfg: MSPhantomConfig) -> tuple[np.ndarray, int]:
    """Lesion label map (0 = none, k = lesion k; all inside WM > 0.5) and the number placed."""
    g = rng(seed, "ms-lesions", anat.subject)
    vox = np.linalg.norm(anat.affine[:3, :3], axis=0)
    wm = anat.wm > 0.5
    depth = ndimage.distance_transform_edt(anat.mask, sampling=vox)
    ventricles = (anat.csf > 0.5) & (depth > 15.0)
    if not ventricles.any() or not wm.any():
        raise VoxflowError(f"{anat.subject}: no ventricles/WM found to place lesions")
    to_vent, nearest = ndimage.distance_transform_edt(
        ~ventricles, sampling=vox, return_indices=True
    )
    world_z = anat.affine[2, 2] * np.arange(wm.shape[2]) + anat.affine[2, 3]
    infra = np.broadcast_to(world_z < -25.0, wm.shape)  # below the tentorium (MNI z)
    pools = {
        "periventricular": np.argwhere(wm & (to_vent <= 5.0) & ~infra),
        "infratentorial": np.argwhere(wm & infra),
        "other": np.argwhere(wm & (to_vent > 5.0) & ~infra),
    }
    kinds = ["periventricular", "infratentorial", "other"]
    probs = np.array(
        [cfg.periventricular, cfg.infratentorial, 1 - cfg.periventricular - cfg.infratentorial]
    )
    n = int(g.integers(cfg.lesions_min, cfg.lesions_max + 1))
    labels = np.zeros(wm.shape, np.int16)
    placed = 0
    for _ in range(n):
        kind = kinds[int(g.choice(3, p=probs))]
        pool = pools[kind] if len(pools[kind]) else pools["other"]
        centre = pool[int(g.integers(len(pool)))]
        top = cfg.periventricular_axis_max_mm if kind == "periventricular" else cfg.axis_max_mm
        axes = np.sort(g.uniform(cfg.axis_min_mm, top, 3))[::-1] / 2  # semi-axes
        if kind == "periventricular":
            direction = (centre - nearest[:, centre[0], centre[1], centre[2]]) * vox
            if not np.any(direction):
                direction = g.normal(size=3)
            frame = _frame_from(direction, g)
        else:
            frame = _rotation(g)
        half = np.ceil(axes.max() / vox).astype(int) + 1
        lo = np.maximum(centre - half, 0)
        hi = np.minimum(centre + half + 1, wm.shape)
        grid = np.stack(
            np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)], indexing="ij"),
            axis=-1,
        )
        offs = (grid - centre) * vox @ frame  # coordinates in the lesion's frame (mm)
        inside = ((offs / axes) ** 2).sum(-1) <= 1.0
        sl = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        lesion = inside & wm[sl]
        if lesion.any():
            placed += 1
            labels[sl][lesion] = placed
    return labels, placed


def bias_field(shape: tuple[int, ...], g: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative field exp(random quadratic polynomial), about 1 +- ``strength``."""
    c = [np.linspace(-1, 1, s) for s in shape]
    x, y, z = np.meshgrid(*c, indexing="ij", sparse=True)
    terms = [x, y, z, x * y, x * z, y * z, x**2 - 1 / 3, y**2 - 1 / 3, z**2 - 1 / 3]
    coef = g.normal(0, strength / 2, len(terms))
    return np.exp(sum(k * t for k, t in zip(coef, terms, strict=True))).astype(np.float32)


def slice_blur(data: np.ndarray, voxel_mm: float, g: np.random.Generator, cfg) -> np.ndarray:
    """Blur along a random axis to a slice thickness drawn from ``cfg.slice_mm`` (FWHM); none
    where the draw is not thicker than the voxel."""
    thickness = g.uniform(*cfg.slice_mm)
    axis = int(g.integers(3))
    sigma = np.sqrt(max(thickness**2 - voxel_mm**2, 0.0)) / 2.355 / voxel_mm
    return ndimage.gaussian_filter1d(data, sigma, axis=axis) if sigma > 0.2 else data


def make_ms_subject(anat: BrainAnatomy, seed: int, cfg: MSPhantomConfig | None = None) -> MSSubject:
    """Images for all four channels and the masks; same inputs -> identical arrays."""
    cfg = cfg or MSPhantomConfig()
    labels, n = place_lesions(anat, seed, cfg)
    mask = labels > 0
    g0 = rng(seed, "ms-lesion-strength", anat.subject)
    # per-lesion contrast factor, shared by the channels (more T2 prolongation: brighter on
    # FLAIR/T2/PD and darker on MPRAGE), spread over the lesion's partial-volume border
    factor = np.r_[1.0, g0.uniform(*cfg.lesion_spread, n)].astype(np.float32)[labels]
    frac = ndimage.gaussian_filter(mask.astype(np.float32), 0.6) * (anat.wm > 0.05)
    frac = np.clip(np.maximum(frac, mask * 0.75), 0, 1)
    border = (frac > 0) & ~mask
    factor[border] = ndimage.grey_dilation(np.where(mask, factor, 0), size=3)[border]
    factor[factor == 0] = 1.0
    les = frac * anat.wm
    # confounders a threshold cannot tell from lesions: a thin hyperintense rim around the
    # ventricles (ependymal "caps", unlabelled) and smooth tissue texture
    ventricles = (anat.csf > 0.6) & (ndimage.distance_transform_edt(anat.mask) > 4)
    rim = ndimage.binary_dilation(ventricles, iterations=1) & ~ventricles
    rim = ndimage.gaussian_filter(rim.astype(np.float32), 0.7) * anat.wm * (1 - frac)
    voxel = float(np.cbrt(anat.voxel_ml * 1000.0))
    images, ratios = {}, {}
    for ch in CHANNELS:
        g = rng(seed, "ms-image", anat.subject, ch)
        c = {k: float(g.uniform(*r)) for k, r in CONTRASTS[ch].items()}
        ratios[ch] = c["lesion"]
        rel = (
            anat.gm * c["gm"]
            + anat.csf * c["csf"]
            + (anat.wm - les - rim)
            + les * (1.0 + (c["lesion"] - 1.0) * factor)
            + rim * (1.0 + cfg.rim * (c["lesion"] - 1.0))
        )
        texture = 1.0 + 0.04 * ndimage.gaussian_filter(g.normal(size=rel.shape), 1.5) / 0.1
        signal = cfg.wm_intensity * rel * texture * bias_field(anat.wm.shape, g, cfg.bias)
        signal = slice_blur(signal, voxel, g, cfg)
        sigma = cfg.wm_intensity / g.uniform(cfg.snr_min, cfg.snr_max)
        noisy = np.hypot(
            signal + g.normal(0, sigma, signal.shape), g.normal(0, sigma, signal.shape)
        )  # Rician magnitude
        images[ch] = noisy.astype(np.float32)
    return MSSubject(
        images,
        mask.astype(np.uint8),
        second_rater(mask, seed, anat.subject),
        anat.affine,
        ratios,
        n,
    )


def second_rater(mask: np.ndarray, seed: int, subject: str) -> np.ndarray:
    """A plausible second rater: each lesion kept (1/2), eroded or dilated by a voxel (1/4 each)."""
    g = rng(seed, "ms-rater2", subject)
    labels, n = ndimage.label(mask, np.ones((3, 3, 3)))
    out = np.zeros_like(mask, dtype=bool)
    for k in range(1, n + 1):
        lesion = labels == k
        action = g.choice(3, p=[0.5, 0.25, 0.25])  # keep, erode, dilate
        if action == 1:
            eroded = ndimage.binary_erosion(lesion)
            lesion = eroded if eroded.any() else lesion
        elif action == 2:
            lesion = ndimage.binary_dilation(lesion) & ~((labels > 0) & (labels != k))
        out |= lesion
    return out.astype(np.uint8)


def isbi2015_paths(root: str | Path, index: int, timepoint: int = 1) -> dict[str, Path]:
    """File paths of one ISBI 2015 training scan (channels, mask1, mask2)."""
    sid, tp = f"training{index:02d}", f"{timepoint:02d}"
    base = Path(root) / "training" / sid
    paths = {ch: base / "preprocessed" / f"{sid}_{tp}_{ch}_pp.nii" for ch in CHANNELS}
    paths["mask1"] = base / "masks" / f"{sid}_{tp}_mask1.nii"
    paths["mask2"] = base / "masks" / f"{sid}_{tp}_mask2.nii"
    return paths


def write_isbi2015(subject: MSSubject, root: str | Path, index: int) -> dict[str, Path]:
    """Write one subject in the ISBI 2015 layout (uncompressed .nii, as distributed)."""
    paths = isbi2015_paths(root, index)
    for ch in CHANNELS:
        write_nifti(paths[ch], subject.images[ch], subject.affine)
    write_nifti(paths["mask1"], subject.mask1, subject.affine)
    write_nifti(paths["mask2"], subject.mask2, subject.affine)
    return paths


def _write_one(args: tuple) -> dict:
    index, root, seed, brain_cfg, cfg = args
    anat = make_brain(f"sub-{index:03d}", seed, brain_cfg, worker_template())
    subject = make_ms_subject(anat, seed, cfg)
    write_isbi2015(subject, root, index)
    return {
        "case": f"training{index:02d}_01",
        "lesions": subject.n_lesions,
        "lesion_ml": round(float(subject.mask1.sum()) * anat.voxel_ml, 2),
        **{f"{ch}_ratio": round(r, 3) for ch, r in subject.lesion_ratio.items()},
    }


def write_cohort(
    root: str | Path,
    subjects: int,
    seed: int,
    brain_cfg: BrainPhantomConfig,
    template: Template,
    cfg: MSPhantomConfig | None = None,
    workers: int = 1,
) -> list[dict]:
    """Subjects 1..``subjects`` (anatomy ``sub-NNN`` of the brain phantom at
    ``brain_cfg.voxel_mm``) in the ISBI 2015 layout, ``workers`` processes; one summary per
    subject (lesion count and volume, lesion/WM ratio per channel)."""
    jobs = [(i, Path(root), seed, brain_cfg, cfg) for i in range(1, subjects + 1)]
    return map_subjects(_write_one, jobs, template, workers)
