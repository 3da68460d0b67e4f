"""Post-cardiac-arrest head CT + earlier MR phantom for the ``gwr`` study, in the real layout.

Per patient (seeded), on the shared MNI152-based anatomy (:mod:`voxflow.phantoms.brain`):

- **Landmarks** (MR labels 1 corpus callosum, 2 caudate, 3 putamen, 4 internal capsule): ellipsoids
  from the atlas extents of ../shared/specs/phantom-physics.md §C3 (Harvard-Oxford, Juelich),
  defined in MNI space, pulled through the subject's warp and intersected with its GM (caudate,
  putamen) or WM (corpus callosum genu + splenium, posterior limb of the internal capsule).
- **CT in HU** (§C1) from the tissue maps: cortical GM 40, deep GM (caudate, putamen) 44, WM 28,
  CSF 8, a CSF rim, skull (cortical tables ~1600 HU around a ~700 HU diploe), scalp (muscle and a
  fat layer), air -1000. **Cytotoxic oedema**: +Δw % water (0-4.5 %) lowers all GM by k·Δw HU
  (k 1.8-2.5) and raises WM by 0-1 HU, so the true GWR_BG spreads over about 1.10-1.35.
- **Geometry**: the CT sees the head through a known random rigid misalignment (±10° per axis,
  ±15 mm per axis) on an axial grid with thick slices (slab-averaged, partial volume along z) and
  Gaussian noise; written as a DICOM series (:mod:`voxflow.io.dicom_write`).
- **MR**: T1-like (the MNI T1 inside the brain, dark CSF rim and skull, bright scalp fat), Rician
  noise, on the anatomy's isotropic grid.

Layout (``root``): ``<patient>/ct/IM*.dcm``, ``<patient>/mr.nii.gz``, ``<patient>/mr_labels.nii.gz``
and ``outcomes.csv`` (``patient,poor_outcome``). The ground truth that real data lacks goes to a
separate ``truth`` folder: ``<patient>/ct_to_mr.tfm`` (ITK/LPS: CT points -> MR points, the
convention of :mod:`voxflow.register`) and ``<patient>/params.json`` (HU values, oedema, exact GWR).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.atomic import atomic_path, write_json
from voxflow.io.images import LPS_TO_RAS, write_nifti
from voxflow.lazy import lazy_import
from voxflow.phantoms.brain import (
    BrainAnatomy,
    BrainPhantomConfig,
    Template,
    _rotation,
    load_template,
    make_brain,
)
from voxflow.seeding import rng

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build

log = logging.getLogger(__name__)

STRUCTURES = {1: "corpus_callosum", 2: "caudate", 3: "putamen", 4: "internal_capsule"}
# MNI (RAS, mm) ellipsoids per structure: (centre, semi-axes), from the §C3 extents.
ELLIPSOIDS: dict[str, list[tuple[tuple[float, float, float], tuple[float, float, float]]]] = {
    "corpus_callosum": [
        ((0.0, 29.0, 9.0), (12.0, 8.0, 11.0)),
        ((0.0, -40.0, 15.0), (14.0, 8.0, 10.0)),
    ],
    "caudate": [((-13.0, 14.0, 9.0), (6.0, 10.0, 12.0)), ((13.5, 14.5, 9.0), (6.0, 10.0, 12.0))],
    "putamen": [((-25.0, 1.0, 1.0), (7.0, 17.0, 11.0)), ((25.5, 1.5, 1.0), (7.0, 17.0, 11.0))],
    "internal_capsule": [
        ((-21.0, -14.0, 7.0), (5.0, 10.0, 8.0)),
        ((22.5, -14.0, 7.0), (5.0, 10.0, 8.0)),
    ],
}
# Tissue a structure is made of, and the probability above which a voxel belongs to it.
TISSUE = {
    "corpus_callosum": ("wm", 0.7),
    "caudate": ("gm", 0.5),
    "putamen": ("gm", 0.45),
    "internal_capsule": ("wm", 0.6),
}
DEEP_GM = ("caudate", "putamen")


@dataclass(frozen=True)
class GWRPhantomConfig:
    """Image geometry, HU values and variability of the post-arrest CT/MR phantom."""

    mr_voxel_mm: float = 1.5
    ct_pixel_mm: float = 1.0
    ct_slice_mm: float = 4.0
    ct_fov_mm: float = 240.0
    ct_length_mm: float = 176.0
    rotation_deg: float = 10.0
    translation_mm: float = 15.0
    noise_hu: float = 4.0
    mr_snr: float = 40.0
    gm_hu: float = 40.0
    deep_gm_hu: float = 44.0
    wm_hu: float = 28.0
    csf_hu: float = 8.0
    oedema_max_percent: float = 4.5
    poor_gwr: float = 1.20

    def __post_init__(self) -> None:
        if self.ct_slice_mm < self.ct_pixel_mm or self.ct_pixel_mm <= 0:
            raise VoxflowError("gwr phantom: need 0 < ct_pixel_mm <= ct_slice_mm")
        if not 0.5 <= self.mr_voxel_mm <= 3.0:
            raise VoxflowError("gwr phantom: mr_voxel_mm must be within 0.5-3 mm")

    @classmethod
    def from_dict(cls, d: dict) -> GWRPhantomConfig:
        """From the ``gwr.phantom`` config block (minus ``patients``); unknown keys rejected."""
        known = set(asdict(cls()))
        unknown = sorted(set(d) - known - {"patients"})
        if unknown:
            raise VoxflowError(f"gwr.phantom: unknown key(s) {unknown}; allowed {sorted(known)}")
        return cls(**{k: float(v) for k, v in d.items() if k in known})


def structure_map(template: Template) -> np.ndarray:
    """The structures' ellipsoids on the template grid as one map of structure values
    (float32, 0 elsewhere; where ellipsoids overlap, the lower value wins)."""
    shape = template.maps["t1"].shape
    inv = np.linalg.inv(template.affine)
    out = np.zeros(shape, np.float32)
    for value in sorted(STRUCTURES, reverse=True):
        for centre, axes in ELLIPSOIDS[STRUCTURES[value]]:
            lo = inv[:3, :3] @ (np.subtract(centre, axes)) + inv[:3, 3]
            hi = inv[:3, :3] @ (np.add(centre, axes)) + inv[:3, 3]
            box = tuple(
                slice(max(int(np.floor(min(a, b))), 0), int(np.ceil(max(a, b))) + 1)
                for a, b in zip(lo, hi, strict=True)
            )
            idx = np.stack(np.meshgrid(*[np.arange(s.start, s.stop) for s in box], indexing="ij"))
            world = np.tensordot(template.affine[:3, :3], idx, axes=1)
            world += template.affine[:3, 3][:, None, None, None]
            r2 = sum(((world[a] - centre[a]) / axes[a]) ** 2 for a in range(3))
            out[box][r2 <= 1.0] = value
    return out


def landmark_labels(anatomy: BrainAnatomy) -> np.ndarray:
    """The 4-landmark label map (uint8) on the anatomy grid: each warped ellipsoid intersected
    with the subject's own GM or WM map."""
    labels = np.zeros(anatomy.t1.shape, np.uint8)
    ids = anatomy.extra["structures"]
    for value, name in STRUCTURES.items():
        tissue, threshold = TISSUE[name]
        labels[(ids == value) & (getattr(anatomy, tissue) > threshold)] = value
    return labels


def head_layers(anatomy: BrainAnatomy) -> dict[str, np.ndarray]:
    """Masks outside the brain by distance (mm): CSF rim, inner/outer skull table and diploe,
    scalp muscle and fat."""
    spacing = np.linalg.norm(anatomy.affine[:3, :3], axis=0)
    brain = anatomy.mask > 0
    brain = ndimage.binary_closing(brain, iterations=2) | brain
    dist = ndimage.distance_transform_edt(~brain, sampling=spacing)
    return {
        "rim": (dist > 0) & (dist <= 2.5),
        "table": ((dist > 2.5) & (dist <= 4.0)) | ((dist > 7.0) & (dist <= 8.5)),
        "diploe": (dist > 4.0) & (dist <= 7.0),
        "muscle": (dist > 8.5) & (dist <= 12.0),
        "fat": (dist > 12.0) & (dist <= 14.0),
    }


def hu_map(
    anatomy: BrainAnatomy, layers: dict[str, np.ndarray], hu: dict[str, float]
) -> np.ndarray:
    """Noise-free CT (HU) on the anatomy grid from the tissue maps and head layers."""
    deep_values = [v for v, n in STRUCTURES.items() if n in DEEP_GM]
    deep = np.isin(anatomy.extra["structures"], deep_values).astype(np.float32)
    gm_hu = (1 - deep) * hu["gm"] + deep * hu["deep_gm"]
    out = np.full(anatomy.t1.shape, -1000.0, np.float32)
    brain = anatomy.mask > 0
    out[brain] = (anatomy.gm * gm_hu + anatomy.wm * hu["wm"] + anatomy.csf * hu["csf"])[brain]
    values = {"rim": hu["csf"], "table": 1600.0, "diploe": 700.0, "muscle": 45.0, "fat": -90.0}
    for name, value in values.items():
        out[layers[name]] = value
    return out


def t1_map(anatomy: BrainAnatomy, layers: dict[str, np.ndarray]) -> np.ndarray:
    """Noise-free T1-weighted MR on the anatomy grid (arbitrary units, WM ~ 1000)."""
    wm_t1 = float(np.percentile(anatomy.t1[anatomy.wm > 0.9], 50)) or 1.0
    out = (anatomy.t1 / wm_t1 * 1000.0).astype(np.float32)
    values = {"rim": 80.0, "table": 40.0, "diploe": 300.0, "muscle": 450.0, "fat": 1100.0}
    for name, value in values.items():
        out[layers[name]] = value
    return out


def random_rigid(g: np.random.Generator, cfg: GWRPhantomConfig) -> tuple[np.ndarray, np.ndarray]:
    """Rotation matrix and translation (mm) of a random rigid misalignment."""
    angles = np.deg2rad(g.uniform(-cfg.rotation_deg, cfg.rotation_deg, 3))
    return _rotation(angles), g.uniform(-cfg.translation_mm, cfg.translation_mm, 3)


def ct_grid(cfg: GWRPhantomConfig, centre: np.ndarray) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of an axial CT grid centred on ``centre`` (mm)."""
    n_xy = int(round(cfg.ct_fov_mm / cfg.ct_pixel_mm))
    n_z = int(round(cfg.ct_length_mm / cfg.ct_slice_mm))
    spacing = np.array([cfg.ct_pixel_mm, cfg.ct_pixel_mm, cfg.ct_slice_mm])
    # DICOM axial: columns run to patient left (-x RAS), rows to posterior (-y RAS)
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = centre - affine[:3, :3] @ ((np.array([n_xy, n_xy, n_z]) - 1) / 2)
    return (n_xy, n_xy, n_z), affine


def sample_ct(
    hu: np.ndarray,
    mr_affine: np.ndarray,
    shape: tuple[int, int, int],
    ct_affine: np.ndarray,
    rotation: np.ndarray,
    centre: np.ndarray,
    translation: np.ndarray,
    subsamples: int = 3,
) -> np.ndarray:
    """The CT: each slice integrates its slab (``subsamples`` planes across the thickness) of
    the HU map seen through the rigid map q = R (p - c) + c + t (CT point p -> MR point q)."""
    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    to_mr = np.linalg.inv(mr_affine)
    out = np.zeros(ijk.shape[1], np.float32)
    for f in (np.arange(subsamples) + 0.5) / subsamples - 0.5:
        p = ct_affine[:3, :3] @ (ijk + np.array([[0], [0], [f]])) + ct_affine[:3, 3:4]
        q = rotation @ (p - centre[:, None]) + (centre + translation)[:, None]
        vox = to_mr[:3, :3] @ q + to_mr[:3, 3:4]
        out += ndimage.map_coordinates(hu, vox, order=1, mode="constant", cval=-1000.0)
    return (out / subsamples).reshape(shape)


def itk_rigid(rotation: np.ndarray, centre: np.ndarray, translation: np.ndarray):
    """The map q = R (p - c) + c + t (RAS) as a SimpleITK Euler3DTransform in LPS."""
    import SimpleITK as sitk

    flip = LPS_TO_RAS[:3, :3]
    tf = sitk.Euler3DTransform()
    tf.SetCenter((flip @ centre).tolist())
    tf.SetMatrix((flip @ rotation @ flip).ravel().tolist())
    tf.SetTranslation((flip @ translation).tolist())
    return tf


def gwr_bg(hu: np.ndarray, labels: np.ndarray) -> float:
    """GWR_BG = (CN + PU) / (CC + PIC) from the mean HU inside each landmark (Torbey 2000)."""
    means = {}
    for value, name in STRUCTURES.items():
        inside = labels == value
        if not inside.any():
            raise VoxflowError(f"GWR: no voxels of {name} (label {value}) in the mask")
        means[name] = float(hu[inside].mean())
    denominator = means["corpus_callosum"] + means["internal_capsule"]
    return (means["caudate"] + means["putamen"]) / denominator


def make_patient(
    patient: str,
    seed: int,
    cfg: GWRPhantomConfig,
    template: Template | None = None,
) -> dict:
    """Generate one patient: MR, MR labels, CT (HU, on its grid), the true transform, params."""
    template = template or load_template(cfg.mr_voxel_mm)
    brain_cfg = BrainPhantomConfig(voxel_mm=cfg.mr_voxel_mm, margin_mm=18.0)
    extra = {"structures": structure_map(template)}
    anatomy = make_brain(patient, seed, brain_cfg, template, extra=extra, extra_order=0)
    labels = landmark_labels(anatomy)
    missing = [STRUCTURES[v] for v in STRUCTURES if not (labels == v).any()]
    if missing:
        raise VoxflowError(f"gwr phantom {patient}: structures {missing} came out empty")
    g = rng(seed, "gwr", patient)
    water = g.uniform(0, cfg.oedema_max_percent)
    k = g.uniform(1.8, 2.5)
    hu = {
        "gm": cfg.gm_hu - k * water,
        "deep_gm": cfg.deep_gm_hu - k * water,
        "wm": cfg.wm_hu + g.uniform(0, 1),
        "csf": cfg.csf_hu,
    }
    layers = head_layers(anatomy)
    hu_mr = hu_map(anatomy, layers, hu)
    rotation, translation = random_rigid(g, cfg)
    brain_idx = np.argwhere(anatomy.mask > 0).mean(axis=0)
    centre = anatomy.affine[:3, :3] @ brain_idx + anatomy.affine[:3, 3]
    # the CT field of view is centred on the head as the CT sees it, with a small table offset
    ct_centre = centre - rotation.T @ translation + g.uniform(-5, 5, 3)
    shape, ct_affine = ct_grid(cfg, ct_centre)
    ct = sample_ct(hu_mr, anatomy.affine, shape, ct_affine, rotation, centre, translation)
    ct += g.normal(0, cfg.noise_hu, ct.shape).astype(np.float32)
    t1 = t1_map(anatomy, layers)
    sigma = 1000.0 / cfg.mr_snr
    noisy = np.hypot(t1 + g.normal(0, sigma, t1.shape), g.normal(0, sigma, t1.shape))
    gwr = gwr_bg(hu_mr, labels)
    params = {
        "patient": patient,
        "water_percent": round(float(water), 4),
        "hu": {k_: round(float(v), 3) for k_, v in hu.items()},
        "gwr_bg": round(float(gwr), 5),
        "rotation_deg": np.rad2deg(_euler_xyz(rotation)).round(4).tolist(),
        "translation_mm": translation.round(4).tolist(),
    }
    return {
        "mr": noisy.astype(np.float32),
        "labels": labels,
        "mr_affine": anatomy.affine,
        "ct": np.clip(np.round(ct), -1024, 3000).astype(np.int16),
        "ct_affine": ct_affine,
        "transform": (rotation, centre, translation),
        "params": params,
    }


def _euler_xyz(r: np.ndarray) -> np.ndarray:
    """Angles (x, y, z) of R = Rz Ry Rx."""
    return np.array(
        [
            np.arctan2(r[2, 1], r[2, 2]),
            -np.arcsin(np.clip(r[2, 0], -1, 1)),
            np.arctan2(r[1, 0], r[0, 0]),
        ]
    )


def write_patient(patient: dict, root: str | Path, truth_root: str | Path, seed: int) -> None:
    """Write one patient in the real layout under ``root`` and its ground truth under
    ``truth_root`` (see the module docstring)."""
    import SimpleITK as sitk

    from voxflow.io.dicom_write import write_series

    name = patient["params"]["patient"]
    folder, truth = Path(root) / name, Path(truth_root) / name
    write_series(folder / "ct", patient["ct"], patient["ct_affine"], name, seed=seed)
    write_nifti(folder / "mr.nii.gz", patient["mr"], patient["mr_affine"])
    write_nifti(folder / "mr_labels.nii.gz", patient["labels"], patient["mr_affine"])
    truth.mkdir(parents=True, exist_ok=True)
    with atomic_path(truth / "ct_to_mr.tfm") as tmp:
        sitk.WriteTransform(itk_rigid(*patient["transform"]), str(tmp))
    write_json(truth / "params.json", patient["params"])


def outcomes(params: list[dict], seed: int, cfg: GWRPhantomConfig) -> list[tuple[str, int]]:
    """Poor neurological outcome per patient: likelier the lower the true GWR (a logistic link
    centred on ``poor_gwr``, 0.02 wide), drawn from the seed."""
    rows = []
    for p in sorted(params, key=lambda p: p["patient"]):
        prob = 1.0 / (1.0 + np.exp((p["gwr_bg"] - cfg.poor_gwr) / 0.02))
        rows.append((p["patient"], int(rng(seed, "gwr-outcome", p["patient"]).random() < prob)))
    return rows
