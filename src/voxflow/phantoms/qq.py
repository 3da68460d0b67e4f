"""QSM + qBOLD phantom: parameter maps, mGRE magnitudes and QSM through the QQ model.

Built on :mod:`voxflow.phantoms.brain`. Per subject (seeded), tissue parameters are drawn from
the ranges of ../shared/specs/phantom-physics.md §A4 for cortical GM, WM, deep GM (GM more than
``deep_gm_mm`` from the brain surface: basal ganglia and thalami) and CSF, and mixed by the
tissue probabilities. On top come smooth within-tissue heterogeneity (Gaussian random fields),
a per-subject shift of Y (subjects differ in global oxygenation) and 2-4 hypoxic regions
(Y 0.40-0.50, radii 10-20 mm, smooth edges, centred near the middle of the volume where the
study crops) so OEF maps have structure. Y's smooth within-subject variation has a longer
correlation length (``y_texture_mm``, territory scale) than that of the other maps. The
magnitudes of ``n_echoes`` echoes (TE = 4.5 + 5k ms) follow
:func:`voxflow.physics.qq_model.mgre_signal` with complex Gaussian noise
(Rician magnitude) at ``snr`` = mean tissue S(TE1) / sigma; QSM follows
:func:`voxflow.physics.qq_model.qsm_chi` plus Gaussian noise. The parameter maps written as
ground truth are exactly the ones that generated the data.

Layout (``../shared/specs/qq.md``): ``<root>/<subject>/mgre.nii.gz`` (4D, echoes last),
``qsm.nii.gz`` (ppm), ``echo_times.json`` (s), ``gt/{S0,R2,Y,v,chi_nb}.nii.gz``, ``mask.nii.gz``
(tissue voxels where the parameters are defined: brain, GM + WM > 0.5).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.atomic import write_json
from voxflow.io.images import write_nifti
from voxflow.lazy import lazy_import
from voxflow.phantoms.brain import BrainAnatomy
from voxflow.physics import qq_model
from voxflow.seeding import rng

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build

# SD of the smooth within-tissue fields (relative for S0, R2, v; ppm for chi_nb). Together with
# the per-subject tissue means (tissue_spread) they decide how well Y can be known at all:
# benchmarks/qq_fit.py prints the per-voxel posterior SD of Y for each setting.
FIELD_SD = {"S0": 0.0075, "R2": 0.0125, "v": 0.0375, "chi_nb": 0.0025}
# Tissue parameter ranges (§A4): (low, high), their midpoints by default; S0 relative to WM.
TISSUE_RANGES = {
    "gm": {"S0": (0.85, 0.85), "R2": (12, 15), "v": (0.03, 0.05), "chi_nb": (-0.01, 0.02)},
    "wm": {"S0": (1.0, 1.0), "R2": (12, 15), "v": (0.01, 0.02), "chi_nb": (-0.04, -0.01)},
    "deep": {"S0": (0.86, 0.86), "R2": (15, 25), "v": (0.02, 0.04), "chi_nb": (0.03, 0.20)},
    "csf": {"S0": (0.38, 0.38), "R2": (0.5, 0.7), "v": (0.0, 0.0), "chi_nb": (0.0, 0.0)},
}


@dataclass(frozen=True)
class QQPhantomConfig:
    """Acquisition and variability of the QQ phantom."""

    n_echoes: int = 8
    te1_ms: float = 4.5
    dte_ms: float = 5.0
    snr: float = 200.0
    qsm_noise_ppm: float = 0.005
    y_mean: float = 0.62
    y_subject_sd: float = 0.025  # between-subject OEF SD 2.6 points (QQ, Cho 2021)
    y_texture_sd: float = 0.02
    hypoxic_min: int = 2
    hypoxic_max: int = 4
    hypoxic_radius_mm: tuple[float, float] = (10.0, 20.0)
    hypoxic_centre_fraction: float = 0.3  # near the centre, inside the study's crop
    deep_gm_mm: float = 22.0
    texture_mm: float = 6.0
    y_texture_mm: float = 16.0  # territory-scale variation
    s0_scale: float = 1.0  # S0 relative to WM, as in §A4
    tissue_spread: float = 0.0  # per-subject tissue means over this share of §A4's range
    texture_scale: float = 1.0  # times FIELD_SD: the smooth S0, R2, v, chi_nb fields

    def __post_init__(self) -> None:
        if self.n_echoes < 3:
            raise VoxflowError("qq phantom: n_echoes must be >= 3")
        if self.snr <= 0 or self.qsm_noise_ppm < 0:
            raise VoxflowError("qq phantom: snr must be > 0 and qsm_noise_ppm >= 0")
        if not 0 <= self.hypoxic_min <= self.hypoxic_max:
            raise VoxflowError("qq phantom: need 0 <= hypoxic_min <= hypoxic_max")

    @property
    def echo_times(self) -> np.ndarray:
        return qq_model.echo_times(self.n_echoes, self.te1_ms * 1e-3, self.dte_ms * 1e-3)


@dataclass
class QQSubject:
    """Ground-truth maps, the simulated mGRE (X, Y, Z, E) and QSM, tissue mask, geometry."""

    maps: dict[str, np.ndarray]
    mgre: np.ndarray
    qsm: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    echo_times: np.ndarray


def smooth_field(shape: tuple[int, ...], g: np.random.Generator, sigma_vox: float) -> np.ndarray:
    """Gaussian random field with unit standard deviation and correlation length ``sigma_vox``."""
    f = ndimage.gaussian_filter(g.standard_normal(shape), sigma_vox, mode="reflect")
    return (f - f.mean()) / max(f.std(), 1e-12)


def tissue_mean(bounds: tuple[float, float], g: np.random.Generator, spread: float) -> float:
    """A subject's tissue mean: uniform over ``spread`` x the range around its midpoint."""
    mid, half = (bounds[0] + bounds[1]) / 2, (bounds[1] - bounds[0]) / 2
    return float(mid + spread * half * g.uniform(-1.0, 1.0))


def hypoxic_regions(
    anat: BrainAnatomy,
    g: np.random.Generator,
    n: int,
    voxel_mm: float,
    radius_mm: tuple[float, float] = (8.0, 15.0),
    centre_fraction: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` smooth ellipsoids centred in tissue: weight in [0, 1] and target Y (0.40-0.50).

    Centres lie in tissue within ``centre_fraction`` of the half-extent of the volume around its
    centre (1 = anywhere); radii are drawn per axis from ``radius_mm``."""
    weight = np.zeros(anat.gm.shape, np.float32)
    target = np.zeros(anat.gm.shape, np.float32)
    grid = np.indices(anat.gm.shape, dtype=np.float32)
    half = (np.array(anat.gm.shape, np.float32) - 1) / 2
    central = np.ones(anat.gm.shape, bool)
    for i in range(3):
        central &= np.abs(grid[i] - half[i]) <= centre_fraction * half[i]
    tissue = np.argwhere((anat.gm + anat.wm > 0.8) & anat.mask.astype(bool) & central)
    if len(tissue) == 0:
        tissue = np.argwhere((anat.gm + anat.wm > 0.8) & anat.mask.astype(bool))
    for _ in range(n):
        centre = tissue[g.integers(len(tissue))]
        radii = g.uniform(*radius_mm, 3) / voxel_mm
        d2 = sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3))
        w = 1.0 / (1.0 + np.exp((np.sqrt(d2) - 1.0) * 6.0))  # soft edge
        target = np.where(w > weight, g.uniform(0.40, 0.50), target)
        weight = np.maximum(weight, w)
    return weight, target


def make_qq_subject(anat: BrainAnatomy, seed: int, cfg: QQPhantomConfig | None = None) -> QQSubject:
    """Parameter maps, mGRE magnitudes and QSM of one subject; same inputs -> identical arrays."""
    cfg = cfg or QQPhantomConfig()
    g = rng(seed, "qq-phantom", anat.subject)
    voxel_mm = float(np.linalg.norm(anat.affine[:3, 0]))
    brain = anat.mask.astype(bool)
    depth_mm = ndimage.distance_transform_edt(brain) * voxel_mm
    deep_w = anat.gm * np.clip((depth_mm - cfg.deep_gm_mm) / 6.0 + 0.5, 0, 1)
    probs = {"gm": anat.gm - deep_w, "deep": deep_w, "wm": anat.wm, "csf": anat.csf}
    total = sum(probs.values())
    total = np.where(total > 1e-6, total, 1.0)
    sigma = cfg.texture_mm / voxel_mm
    maps: dict[str, np.ndarray] = {}
    for p in ("S0", "R2", "v", "chi_nb"):
        means = {t: tissue_mean(TISSUE_RANGES[t][p], g, cfg.tissue_spread) for t in probs}
        maps[p] = sum(probs[t] * means[t] for t in probs) / total
    # smooth within-tissue heterogeneity
    sd = {p: cfg.texture_scale * v for p, v in FIELD_SD.items()}
    for p in ("S0", "R2", "v"):
        maps[p] = maps[p] * (1 + sd[p] * smooth_field(brain.shape, g, sigma))
    maps["chi_nb"] = maps["chi_nb"] + sd["chi_nb"] * smooth_field(brain.shape, g, sigma)
    y_subject = np.clip(g.normal(cfg.y_mean, cfg.y_subject_sd), 0.55, 0.70)
    y = y_subject + cfg.y_texture_sd * smooth_field(brain.shape, g, cfg.y_texture_mm / voxel_mm)
    n_hyp = int(g.integers(cfg.hypoxic_min, cfg.hypoxic_max + 1))
    w, y_low = hypoxic_regions(
        anat, g, n_hyp, voxel_mm, tuple(cfg.hypoxic_radius_mm), cfg.hypoxic_centre_fraction
    )
    maps["Y"] = np.clip(y * (1 - w) + y_low * w, 0.35, 0.85)
    maps["v"] = np.clip(maps["v"], 0.0, 0.08)
    # outside the brain: no tissue (S0 = 0, v = 0); Y there is undefined and set to Ya
    for p, outside in (("S0", 0.0), ("R2", 0.0), ("v", 0.0), ("chi_nb", 0.0)):
        maps[p] = np.where(brain, maps[p], outside)
    maps["Y"] = np.where(brain, maps["Y"], qq_model.CONSTANTS.y_a)
    maps["S0"] = maps["S0"] * cfg.s0_scale
    maps = {k: maps[k].astype(np.float32) for k in qq_model.PARAMS}

    te = cfg.echo_times
    clean = qq_model.mgre_signal(*(maps[p] for p in qq_model.PARAMS), te)
    mask = brain & (anat.gm + anat.wm > 0.5)
    sigma_noise = float(clean[mask, 0].mean()) / cfg.snr
    noise = g.standard_normal(clean.shape) + 1j * g.standard_normal(clean.shape)
    mgre = np.abs(clean + sigma_noise * noise).astype(np.float32)  # Rician magnitude
    qsm = qq_model.qsm_chi(maps["Y"], maps["v"], maps["chi_nb"])
    qsm = qsm + cfg.qsm_noise_ppm * g.standard_normal(qsm.shape)
    qsm = np.where(brain, qsm, 0.0).astype(np.float32)  # QSM is reconstructed inside the brain
    return QQSubject(maps, mgre, qsm, mask.astype(np.uint8), anat.affine, te)


def qq_paths(root: str | Path, subject: str) -> dict[str, Path]:
    """File paths of one subject in the qq layout."""
    base = Path(root) / subject
    paths = {
        "mgre": base / "mgre.nii.gz",
        "qsm": base / "qsm.nii.gz",
        "echo_times": base / "echo_times.json",
        "mask": base / "mask.nii.gz",
    }
    paths.update({p: base / "gt" / f"{p}.nii.gz" for p in qq_model.PARAMS})
    return paths


def write_qq_subject(subject: QQSubject, root: str | Path, name: str) -> dict[str, Path]:
    """Write one subject in the qq layout."""
    paths = qq_paths(root, name)
    write_nifti(paths["mgre"], subject.mgre, subject.affine)
    write_nifti(paths["qsm"], subject.qsm, subject.affine)
    write_nifti(paths["mask"], subject.mask, subject.affine)
    for p in qq_model.PARAMS:
        write_nifti(paths[p], subject.maps[p], subject.affine)
    te = [round(float(t), 6) for t in subject.echo_times]
    write_json(paths["echo_times"], te, indent=None)
    return paths
