"""Glioblastoma mpMRI phantom for the ``mgmt`` study, in the Kaggle RSNA-MICCAI 2021 layout.

Per patient (seeded), on the shared MNI152-based anatomy (:mod:`voxflow.phantoms.brain`):

- **Tumour**: a lobulated sphere of radius 15-30 mm centred in white matter: a necrotic core,
  an enhancing rim (bright only on T1wCE) and a perifocal oedema shell (4-20 mm, bright on FLAIR
  and T2w, mostly in white matter), partial-volumed at its borders.
- **Contrasts**: FLAIR, T1w, T1wCE, T2w as tissue mixtures of relative intensities (WM = 1; GM
  and CSF from ../shared/specs/phantom-physics.md §B1, tumour compartments from the usual
  appearance of glioblastoma), randomised ±10 % per patient, a smooth bias field, a scanner gain
  and Rician noise.
- **Acquisition**: each series in a random plane (axial / sagittal / coronal, up to 5° oblique),
  random pixel size, slice thickness (slab-averaged) and coverage, hence a random slice count;
  ``Image-<n>.dcm`` numbers with gaps and a random start, some stacks numbered in reverse
  (or shuffled) with respect to their positions, and a few blank slices at the stack ends.
- **Label and planted signal**: ``MGMT_value ~ Bernoulli(0.5)``; a latent score
  ``s ~ N(effect * MGMT_value, 1)`` sets the *necrotic fraction* of the tumour (core radius /
  enhancing radius = ``lo + (hi - lo) * Phi(s - effect / 2)``). ``s`` is a sufficient statistic
  (equal-variance Gaussians), so the Bayes-optimal score is ``s`` itself and the best achievable
  AUC is ``Phi(effect / sqrt(2))`` (:func:`ceiling_auc`); ``effect: 0`` is the negative control.
  This is a planted toy signal, not a claim about MGMT biology (real AUCs are ~0.5-0.62).
- **Degenerate cases** (for the exclusion list, like Kaggle's 00109/00123/00709): a FLAIR series
  of a single image, and a blank T1wCE series.

Layout (``root``): ``train/<5-digit id>/{FLAIR,T1w,T1wCE,T2w}/Image-<n>.dcm`` and
``train_labels.csv`` (``BraTS21ID,MGMT_value``; most ids unpadded, as Kaggle writes them, some
zero-padded). The truth real data lacks (latent score, necrotic fraction, planes) goes to a
separate ``planted.tsv``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.atomic import write_text_atomic
from voxflow.io.dicom_write import write_series
from voxflow.io.images import LPS_TO_RAS
from voxflow.lazy import lazy_import
from voxflow.phantoms.brain import (
    BrainPhantomConfig,
    Template,
    _rotation,
    make_brain,
    map_subjects,
    worker_template,
)
from voxflow.phantoms.ms import bias_field
from voxflow.phantoms.qq import smooth_field
from voxflow.seeding import rng

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build

log = logging.getLogger(__name__)

SERIES = ("FLAIR", "T1w", "T1wCE", "T2w")
# Relative intensities (WM = 1) of CSF, GM and the tumour compartments per series.
CONTRASTS = {
    "FLAIR": {"csf": 0.05, "gm": 1.16, "oedema": 1.9, "enhancing": 1.6, "necrosis": 1.3},
    "T1w": {"csf": 0.30, "gm": 0.74, "oedema": 0.80, "enhancing": 0.75, "necrosis": 0.45},
    "T1wCE": {"csf": 0.30, "gm": 0.74, "oedema": 0.80, "enhancing": 1.9, "necrosis": 0.45},
    "T2w": {"csf": 3.6, "gm": 1.44, "oedema": 2.3, "enhancing": 1.7, "necrosis": 3.0},
}
# DICOM directions (LPS) of the rows and columns of each plane (the usual scanner convention).
PLANES = {
    "axial": ((1, 0, 0), (0, 1, 0)),
    "sagittal": ((0, 1, 0), (0, 0, -1)),
    "coronal": ((1, 0, 0), (0, 0, -1)),
}
LABELS_CSV = "train_labels.csv"
PLANTED_COLUMNS = ("BraTS21ID", "MGMT_value", "score", "necrotic_fraction", "radius_mm", "planes")


@dataclass(frozen=True)
class MGMTPhantomConfig:
    """Tumour, signal and acquisition variability of the glioblastoma phantom (mm, degrees)."""

    effect: float = 3.0
    voxel_mm: float = 2.0
    radius_min_mm: float = 15.0
    radius_max_mm: float = 30.0
    necrotic_min: float = 0.2
    necrotic_max: float = 0.8
    oedema_min_mm: float = 4.0
    oedema_max_mm: float = 20.0
    pixel_min_mm: float = 1.8
    pixel_max_mm: float = 2.4
    slice_min_mm: float = 2.0
    slice_max_mm: float = 6.0
    coverage_min: float = 0.85
    coverage_max: float = 1.15
    oblique_deg: float = 5.0
    snr_min: float = 15.0
    snr_max: float = 30.0
    reversed_fraction: float = 0.3
    shuffled_fraction: float = 0.1
    blank_fraction: float = 0.2
    max_id: int = 1010
    degenerate: tuple[str, ...] = ("00109", "00123")

    def __post_init__(self) -> None:
        if self.effect < 0:
            raise VoxflowError(f"mgmt.phantom.effect: {self.effect} must be >= 0")
        if not 0 < self.necrotic_min < self.necrotic_max < 1:
            raise VoxflowError("mgmt.phantom: need 0 < necrotic_min < necrotic_max < 1")
        pairs = ("radius", "oedema", "pixel", "slice", "coverage", "snr")
        for name in pairs:
            lo, hi = (getattr(self, k) for k in _range_keys(name))
            if not 0 < lo <= hi:
                raise VoxflowError(f"mgmt.phantom: need 0 < {name}_min <= {name}_max")
        for d in self.degenerate:
            if not (d.isdigit() and len(d) == 5):
                raise VoxflowError(f"mgmt.phantom.degenerate: '{d}' is not a 5-digit id")

    @classmethod
    def from_dict(cls, d: dict) -> MGMTPhantomConfig:
        """From the ``mgmt.phantom`` config block (minus ``patients``); unknown keys rejected."""
        types = {f.name: str(f.type) for f in fields(cls)}
        unknown = sorted(set(d) - set(types) - {"patients"})
        if unknown:
            raise VoxflowError(f"mgmt.phantom: unknown key(s) {unknown}; allowed {sorted(types)}")
        cast = {"float": float, "int": int}
        kw = {
            k: tuple(str(x).zfill(5) for x in v) if k == "degenerate" else cast[types[k]](v)
            for k, v in d.items()
            if k in types
        }
        return cls(**kw)


def _range_keys(name: str) -> tuple[str, str]:
    if name in ("radius", "oedema", "pixel", "slice"):
        return f"{name}_min_mm", f"{name}_max_mm"
    return f"{name}_min", f"{name}_max"


def ceiling_auc(effect: float) -> float:
    """Population AUC of the Bayes-optimal score: Phi(effect / sqrt(2))."""
    return 0.5 * (1 + math.erf(effect / 2))


def cohort_ids(patients: int, seed: int, cfg: MGMTPhantomConfig) -> list[str]:
    """``patients`` distinct 5-digit BraTS21IDs (sorted), the degenerate ones among them."""
    if patients < len(cfg.degenerate) + 4:
        raise VoxflowError(f"mgmt.phantom.patients: {patients} is too few (need >= 4 + degenerate)")
    if patients > cfg.max_id:
        raise VoxflowError(f"mgmt.phantom.patients: {patients} exceeds max_id {cfg.max_id}")
    forced = sorted(int(d) for d in cfg.degenerate)
    pool = np.setdiff1d(np.arange(cfg.max_id), forced)
    drawn = rng(seed, "mgmt", "ids").choice(pool, patients - len(forced), replace=False)
    return [f"{i:05d}" for i in sorted([*forced, *drawn.tolist()])]


def planted(pid: str, seed: int, cfg: MGMTPhantomConfig) -> dict:
    """The label, latent score and necrotic fraction of patient ``pid``."""
    g = rng(seed, "mgmt", "label", pid)
    label = int(g.random() < 0.5)
    score = float(g.normal(cfg.effect * label, 1.0))
    phi = 0.5 * (1 + math.erf((score - cfg.effect / 2) / math.sqrt(2)))
    fraction = cfg.necrotic_min + (cfg.necrotic_max - cfg.necrotic_min) * phi
    return {"MGMT_value": label, "score": score, "necrotic_fraction": fraction}


def tumour_maps(anat, g: np.random.Generator, cfg: MGMTPhantomConfig, fraction: float) -> dict:
    """Soft (partial-volume) maps of necrosis, enhancing rim and oedema on the anatomy grid."""
    vox = cfg.voxel_mm
    mask = anat.mask > 0
    depth = ndimage.distance_transform_edt(mask) * vox
    radius = float(g.uniform(cfg.radius_min_mm, cfg.radius_max_mm))
    ok = (anat.wm > 0.6) & (depth >= 0.7 * radius)
    if not ok.any():
        ok = anat.wm > 0.6
    candidates = np.argwhere(ok)
    centre = candidates[g.integers(len(candidates))].astype(float)
    idx = np.indices(mask.shape, dtype=np.float32)
    r = np.sqrt(sum((idx[a] - centre[a]) ** 2 for a in range(3))) * vox
    # lobulated outline: the radius scaled by a smooth random field (~15 % variation)
    lobes = np.clip(smooth_field(mask.shape, g, 12.0 / vox), -2, 2).astype(np.float32)
    r_eff = r / (1 + 0.15 * lobes)
    oedema_mm = float(g.uniform(cfg.oedema_min_mm, cfg.oedema_max_mm))

    def inside(radius_mm: float) -> np.ndarray:
        return np.clip((radius_mm - r_eff) / vox + 0.5, 0.0, 1.0)

    brain = mask.astype(np.float32)
    tumour = inside(radius) * brain
    core = inside(fraction * radius) * brain
    shell = (inside(radius + oedema_mm) * brain - tumour) * (0.3 + 0.7 * anat.wm)
    return {
        "necrosis": core,
        "enhancing": tumour - core,
        "oedema": np.clip(shell, 0, 1),
        "radius_mm": radius,
        "oedema_mm": oedema_mm,
        "centre_vox": centre,
    }


def series_image(anat, maps: dict, name: str, g: np.random.Generator) -> np.ndarray:
    """One contrast on the anatomy grid (WM = 1), tumour compartments mixed in by fraction."""
    c = {k: v * float(g.uniform(0.9, 1.1)) for k, v in CONTRASTS[name].items()}
    img = anat.wm * 1.0 + anat.gm * c["gm"] + anat.csf * c["csf"]
    parts = ("necrosis", "enhancing", "oedema")
    total = sum(maps[p] for p in parts)
    img = img * (1 - total) + sum(maps[p] * c[p] for p in parts) * (anat.mask > 0)
    return (img * bias_field(img.shape, g, 0.2)).astype(np.float32)


def acquisition(anat, g: np.random.Generator, cfg: MGMTPhantomConfig, plane: str) -> tuple:
    """Shape and RAS affine of a random acquisition grid in ``plane`` covering the brain."""
    row, col = (np.asarray(v, float) for v in PLANES[plane])
    lps = np.stack([row, col, np.cross(row, col)], axis=1)
    tilt = _rotation(np.deg2rad(g.uniform(-cfg.oblique_deg, cfg.oblique_deg, 3)))
    lps = tilt @ lps
    ras_dirs = LPS_TO_RAS[:3, :3] @ lps
    pts = np.argwhere(anat.mask > 0)
    world = anat.affine[:3, :3] @ pts.T + anat.affine[:3, 3:4]
    centre = world.mean(axis=1) + g.uniform(-5, 5, 3)
    extent = np.ptp(ras_dirs.T @ world, axis=1) + 10.0
    pixel = float(g.uniform(cfg.pixel_min_mm, cfg.pixel_max_mm))
    thick = float(g.uniform(cfg.slice_min_mm, cfg.slice_max_mm))
    n_in = int(np.ceil(max(extent[0], extent[1]) * 1.1 / pixel))
    n_sl = max(int(round(extent[2] * g.uniform(cfg.coverage_min, cfg.coverage_max) / thick)), 3)
    spacing = np.array([pixel, pixel, thick])
    affine = np.eye(4)
    affine[:3, :3] = ras_dirs * spacing
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array([n_in, n_in, n_sl]) - 1) / 2)
    return (n_in, n_in, n_sl), affine


def sample(image: np.ndarray, anat_affine: np.ndarray, shape, affine, subsamples: int = 3):
    """The acquisition: each slice integrates its slab (``subsamples`` planes) of ``image``."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    to_anat = np.linalg.inv(anat_affine) @ affine
    out = np.zeros(ijk.shape[1], np.float32)
    for f in (np.arange(subsamples) + 0.5) / subsamples - 0.5:
        vox = to_anat[:3, :3] @ (ijk + np.array([[0], [0], [f]])) + to_anat[:3, 3:4]
        out += ndimage.map_coordinates(image, vox, order=1, mode="constant", cval=0.0)
    return (out / subsamples).reshape(shape)


def numbering(n: int, g: np.random.Generator, cfg: MGMTPhantomConfig) -> tuple[list[int], str]:
    """``Image-<n>`` numbers of slices 0..n-1 (by position): gapped, random start; some
    reversed or shuffled with respect to the positions."""
    start = int(g.integers(1, 40))
    numbers = np.sort(g.choice(np.arange(start, start + 2 * n), n, replace=False))
    u = g.random()
    if u < cfg.shuffled_fraction:
        return g.permutation(numbers).tolist(), "shuffled"
    if u < cfg.shuffled_fraction + cfg.reversed_fraction:
        return numbers[::-1].tolist(), "reversed"
    return numbers.tolist(), "ordered"


def make_patient(pid: str, seed: int, cfg: MGMTPhantomConfig, template: Template) -> dict:
    """One patient: four series (data, affine, numbering) and the planted truth."""
    truth = planted(pid, seed, cfg)
    anat = make_brain(pid, seed, BrainPhantomConfig(voxel_mm=cfg.voxel_mm), template)
    g = rng(seed, "mgmt", "patient", pid)
    maps = tumour_maps(anat, g, cfg, truth["necrotic_fraction"])
    gain = float(g.uniform(300, 1200))
    series = {}
    for name in SERIES:
        image = series_image(anat, maps, name, g)
        plane = str(g.choice(list(PLANES)))
        shape, affine = acquisition(anat, g, cfg, plane)
        data = sample(image, anat.affine, shape, affine) * gain
        sigma = gain / float(g.uniform(cfg.snr_min, cfg.snr_max))
        noise = g.normal(0, sigma, (2, *shape)).astype(np.float32)
        data = np.sqrt((data + noise[0]) ** 2 + noise[1] ** 2)  # Rician magnitude
        if g.random() < cfg.blank_fraction:  # blank slices at the stack's ends
            k = int(g.integers(1, 4))
            data[..., :k] = 0
            data[..., -k:] = 0
        numbers, order = numbering(shape[2], g, cfg)
        series[name] = {
            "data": data,
            "affine": affine,
            "numbers": numbers,
            "plane": plane,
            "order": order,
        }
    if cfg.degenerate and pid == cfg.degenerate[0]:
        s = series["FLAIR"]  # a single image: not a volume
        mid = s["data"].shape[2] // 2
        s["data"], s["numbers"] = s["data"][..., mid : mid + 1], s["numbers"][mid : mid + 1]
        s["affine"] = s["affine"].copy()
        s["affine"][:3, 3] += s["affine"][:3, 2] * mid
    if len(cfg.degenerate) > 1 and pid == cfg.degenerate[1]:
        series["T1wCE"]["data"] = np.zeros_like(series["T1wCE"]["data"])  # a blank series
    truth.update(
        BraTS21ID=pid,
        radius_mm=round(maps["radius_mm"], 3),
        planes=",".join(series[s]["plane"] for s in SERIES),
    )
    return {"id": pid, "series": series, "truth": truth}


def write_patient(patient: dict, root: str | Path, seed: int) -> Path:
    """``<root>/train/<id>/<series>/Image-<n>.dcm`` for the four series; returns the folder."""
    folder = Path(root) / "train" / patient["id"]
    for number, name in enumerate(SERIES, start=1):
        s = patient["series"][name]
        write_series(
            folder / name,
            np.clip(np.round(s["data"]), 0, 65535),
            s["affine"],
            patient["id"],
            modality="MR",
            description=name,
            intercept=0.0,
            seed=seed,
            series_number=number,
            prefix="Image-",
            series_key=name,
            numbers=s["numbers"],
        )
    return folder


def write_labels(truths: list[dict], root: str | Path, seed: int) -> Path:
    """``train_labels.csv`` as Kaggle writes it: ids as integers (unpadded), one in five padded."""
    g = rng(seed, "mgmt", "csv")
    lines = ["BraTS21ID,MGMT_value"]
    for t in sorted(truths, key=lambda t: t["BraTS21ID"]):
        pid = t["BraTS21ID"] if g.random() < 0.2 else str(int(t["BraTS21ID"]))
        lines.append(f"{pid},{t['MGMT_value']}")
    return write_text_atomic(Path(root) / LABELS_CSV, "\n".join(lines) + "\n")


def write_planted(truths: list[dict], path: str | Path) -> Path:
    """The planted truth per patient (``PLANTED_COLUMNS``) as TSV."""
    import pandas as pd

    from voxflow.io.tables import write_tsv

    df = pd.DataFrame(truths)[list(PLANTED_COLUMNS)].sort_values("BraTS21ID")
    return write_tsv(df, path)


def _one(args: tuple) -> dict:
    pid, seed, cfg, root = args
    patient = make_patient(pid, seed, cfg, worker_template())
    write_patient(patient, root, seed)
    log.info("%s: %s", pid, {k: patient["truth"][k] for k in ("MGMT_value", "planes")})
    return patient["truth"]


def write_cohort(
    root: str | Path,
    planted_path: str | Path,
    patients: int,
    seed: int,
    cfg: MGMTPhantomConfig,
    template: Template,
    workers: int = 1,
) -> list[dict]:
    """The whole cohort (``workers`` processes), ``train_labels.csv`` and ``planted.tsv``."""
    ids = cohort_ids(patients, seed, cfg)
    truths = map_subjects(_one, [(pid, seed, cfg, root) for pid in ids], template, workers)
    write_labels(truths, root, seed)
    write_planted(truths, planted_path)
    return truths
