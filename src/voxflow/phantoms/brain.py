"""Shared brain phantom base: MNI152 2009a anatomy (nilearn's bundled templates) per subject.

Each subject is the template pulled through a seeded random affine (rotation, anisotropic scale,
translation about the brain centre) composed with a smooth random displacement field, resampled
onto an axis-aligned RAS grid at ``voxel_mm`` covering the brain. Coarser grids get partial-volume
averaging (Gaussian pre-filter), so tissue maps stay physical probabilities. Outputs: GM, WM, CSF
probability maps (CSF derived: brain mask minus GM and WM), brain mask, T1 and the affine.
See ../shared/specs/phantom-physics.md ("Common anatomy").
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import write_bytes_atomic
from voxflow.io.images import write_nifti
from voxflow.lazy import lazy_import
from voxflow.seeding import rng

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build

if TYPE_CHECKING:  # pandas costs ~0.5 s to import; only the QC table needs it
    import pandas as pd

log = logging.getLogger(__name__)

TISSUES = ("gm", "wm", "csf")
MAPS = ("t1", "gm", "wm", "csf", "mask")


@dataclass(frozen=True)
class BrainPhantomConfig:
    """Per-subject variability of the brain phantom (all sizes in mm/degrees)."""

    voxel_mm: float = 2.0
    rotation_deg: float = 6.0
    scale: float = 0.06
    translation_mm: float = 4.0
    deformation_mm: float = 2.5
    deformation_spacing_mm: float = 24.0
    margin_mm: float = 6.0

    def __post_init__(self) -> None:
        if not 0.5 <= self.voxel_mm <= 8.0:
            raise VoxflowError(f"brain phantom: voxel_mm={self.voxel_mm} must be within 0.5-8 mm")
        if self.deformation_spacing_mm < 2 * self.voxel_mm:
            raise VoxflowError("brain phantom: deformation_spacing_mm must be >= 2 x voxel_mm")


@dataclass
class BrainAnatomy:
    """One subject's anatomy: tissue probability maps, brain mask, T1, RAS affine (mm)."""

    subject: str
    t1: np.ndarray
    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    mask: np.ndarray
    affine: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def voxel_ml(self) -> float:
        return float(abs(np.linalg.det(self.affine[:3, :3]))) / 1000.0

    def volumes_ml(self) -> dict[str, float]:
        """Tissue volumes (sum of probabilities) and brain-mask volume in ml."""
        out = {t: float(getattr(self, t).sum(dtype=np.float64)) * self.voxel_ml for t in TISSUES}
        out["brain"] = float(np.count_nonzero(self.mask)) * self.voxel_ml
        return out


MNI152_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}


def mni152_folder() -> Path:
    """nilearn's packaged data folder, found without importing nilearn (a slow import)."""
    import importlib.util

    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise VoxflowError(
            "nilearn is not installed; it ships the MNI152 templates (pip install nilearn)"
        )
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    missing = [f for f in MNI152_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise VoxflowError(
            f"{folder}: MNI152 template file(s) {missing} missing; reinstall nilearn"
        )
    return folder


@lru_cache(maxsize=1)
def _template() -> tuple[dict[str, np.ndarray], np.ndarray]:
    """MNI152 2009a T1/GM/WM/mask at 1 mm from nilearn's package data (no download), as
    nilearn's ``load_mni152_*`` give them: each map scaled to a maximum of 1, the brain mask
    T1 > 0.2."""
    import nibabel as nib

    folder = mni152_folder()
    imgs = {k: nib.load(folder / f) for k, f in MNI152_FILES.items()}
    maps = {k: np.asarray(v.get_fdata(), dtype=np.float32) for k, v in imgs.items()}
    maps = {k: v / v.max() for k, v in maps.items()}
    maps["mask"] = (maps["t1"] > 0.2).astype(np.float32)
    gm, wm = maps["gm"], maps["wm"]
    total = gm + wm
    over = total > 1.0
    gm[over] /= total[over]
    wm[over] /= total[over]
    mask = (maps["mask"] > 0.5).astype(np.float32)
    maps["gm"], maps["wm"], maps["mask"] = gm * mask, wm * mask, mask
    maps["csf"] = np.clip(mask - maps["gm"] - maps["wm"], 0.0, 1.0)
    maps["t1"] = maps["t1"] * mask
    return maps, np.asarray(imgs["t1"].affine, dtype=np.float64)


@dataclass(frozen=True)
class Template:
    """The MNI152 maps at 1 mm, pre-filtered for ``voxel_mm`` (FWHM = voxel, partial-volume
    averaging), their affine and the world box (mm, 2x3: low, high) of the brain mask."""

    maps: dict[str, np.ndarray]
    affine: np.ndarray
    voxel_mm: float
    box_mm: np.ndarray


@lru_cache(maxsize=4)
def load_template(voxel_mm: float) -> Template:
    """Build the template for ``voxel_mm`` from nilearn's MNI152 files (a few seconds)."""
    maps, taff = _template()
    idx = np.argwhere(maps["mask"] > 0)
    box = np.stack([taff[:3, :3] @ idx.min(axis=0), taff[:3, :3] @ idx.max(axis=0)]) + taff[:3, 3]
    sigma = 0.4247 * float(np.sqrt(max(voxel_mm**2 - 1.0, 0.0)))
    if sigma >= 0.1:
        maps = {k: ndimage.gaussian_filter(v, sigma, mode="constant") for k, v in maps.items()}
    return Template(maps, taff, float(voxel_mm), box)


def write_template(template: Template, path: str | Path) -> Path:
    """Save a template (uncompressed .npz, read back in a fraction of a second)."""
    buf = io.BytesIO()
    np.savez(
        buf,
        affine=template.affine,
        voxel_mm=template.voxel_mm,
        box_mm=template.box_mm,
        **{f"map_{k}": v for k, v in template.maps.items()},
    )
    return write_bytes_atomic(path, buf.getvalue())


def read_template(path: str | Path) -> Template:
    """Read a template written by :func:`write_template`."""
    try:
        with np.load(path) as z:
            maps = {k[4:]: z[k] for k in z.files if k.startswith("map_")}
            return Template(maps, z["affine"], float(z["voxel_mm"]), z["box_mm"])
    except (OSError, KeyError, ValueError) as err:
        raise input_error(path, f"not a brain template ({err})", "Delete it and rerun") from err


def output_grid(
    cfg: BrainPhantomConfig, template: Template | None = None
) -> tuple[tuple[int, int, int], np.ndarray]:
    """Shape and RAS affine of the subject grid: the template brain's box plus a margin."""
    box = (template or load_template(cfg.voxel_mm)).box_mm
    lo, hi = box[0] - cfg.margin_mm, box[1] + cfg.margin_mm
    shape = tuple(int(np.ceil((h - lo_) / cfg.voxel_mm)) + 1 for lo_, h in zip(lo, hi, strict=True))
    affine = np.diag([cfg.voxel_mm] * 3 + [1.0])
    affine[:3, 3] = lo
    return shape, affine  # type: ignore[return-value]


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def subject_transform(
    subject: str, seed: int, cfg: BrainPhantomConfig, shape: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    """The seeded random affine (subject mm -> template mm) and coarse displacement control grid
    for a subject grid of ``shape`` (from :func:`output_grid`)."""
    g = rng(seed, "brain", subject)
    angles = np.deg2rad(g.uniform(-cfg.rotation_deg, cfg.rotation_deg, 3))
    scales = 1.0 + g.uniform(-cfg.scale, cfg.scale, 3)
    shift = g.uniform(-cfg.translation_mm, cfg.translation_mm, 3)
    extent = np.asarray(shape) * cfg.voxel_mm
    ctrl_shape = tuple(int(np.ceil(e / cfg.deformation_spacing_mm)) + 1 for e in extent)
    ctrl = g.normal(0.0, cfg.deformation_mm, (3, *ctrl_shape))
    matrix = _rotation(angles) @ np.diag(1.0 / scales)
    return {"matrix": matrix, "shift": shift, "ctrl": ctrl}


def make_brain(
    subject: str,
    seed: int,
    cfg: BrainPhantomConfig | None = None,
    template: Template | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
    extra_order: int = 1,
) -> BrainAnatomy:
    """Generate one subject's anatomy. Same (subject, seed, cfg) -> identical arrays, whether
    the template is built here or read from a file (:func:`write_template`). ``extra`` maps on
    the template grid (e.g. atlas structures) are pulled through the same warp (spline order
    ``extra_order``: 1 linear, 0 nearest neighbour for label maps) into ``BrainAnatomy.extra``."""
    cfg = cfg or BrainPhantomConfig()
    template = template or load_template(cfg.voxel_mm)
    if not np.isclose(template.voxel_mm, cfg.voxel_mm):
        raise VoxflowError(
            f"brain template is for {template.voxel_mm} mm, the phantom asks {cfg.voxel_mm} mm; "
            "rebuild the template"
        )
    maps, taff = template.maps, template.affine
    shape, affine = output_grid(cfg, template)
    tf = subject_transform(subject, seed, cfg, shape)

    ijk = np.indices(shape, dtype=np.float32).reshape(3, -1)
    world = affine[:3, :3].astype(np.float32) @ ijk + affine[:3, 3:4].astype(np.float32)
    centre = np.array([0.0, -18.0, 12.0], dtype=np.float32)[:, None]  # MNI brain centre (mm)
    src = tf["matrix"].astype(np.float32) @ (world - centre) + centre + tf["shift"][:, None]
    # smooth displacement: cubic interpolation of the control grid at each voxel
    ctrl = tf["ctrl"]
    ctrl_coords = (
        ijk
        * (np.asarray(ctrl.shape[1:], np.float32)[:, None] - 1)
        / (np.asarray(shape, np.float32)[:, None] - 1)
    )
    for a in range(3):
        src[a] += ndimage.map_coordinates(ctrl[a], ctrl_coords, order=3, mode="nearest")
    del ctrl_coords, ijk, world
    tinv = np.linalg.inv(taff)
    vox = tinv[:3, :3].astype(np.float32) @ src + tinv[:3, 3:4].astype(np.float32)
    del src
    out: dict[str, np.ndarray] = {}
    for name in MAPS:
        warped = ndimage.map_coordinates(maps[name], vox, order=1, mode="constant", cval=0.0)
        out[name] = np.clip(warped.reshape(shape), 0.0, None).astype(np.float32)
    warped_extra = {
        name: ndimage.map_coordinates(m, vox, order=extra_order, mode="constant", cval=0.0)
        .reshape(shape)
        .astype(np.float32)
        for name, m in (extra or {}).items()
    }
    mask = out["mask"] > 0.5
    tissue = {t: np.clip(out[t], 0.0, 1.0) * mask for t in TISSUES}
    total = tissue["gm"] + tissue["wm"] + tissue["csf"]
    norm = np.where(total > 1e-6, 1.0 / np.maximum(total, 1e-6), 0.0).astype(np.float32)
    return BrainAnatomy(
        subject=subject,
        t1=(out["t1"] * mask).astype(np.float32),
        gm=(tissue["gm"] * norm).astype(np.float32),
        wm=(tissue["wm"] * norm).astype(np.float32),
        csf=(tissue["csf"] * norm).astype(np.float32),
        mask=mask.astype(np.uint8),
        affine=affine,
        extra=warped_extra,
    )


def write_brain(anatomy: BrainAnatomy, out_dir: str | Path) -> dict[str, Path]:
    """Write ``{t1,gm,wm,csf,mask}.nii.gz`` into ``out_dir``; returns the paths."""
    out_dir = Path(out_dir)
    paths = {}
    for name in MAPS:
        data = getattr(anatomy, name)
        paths[name] = write_nifti(out_dir / f"{name}.nii.gz", data, anatomy.affine)
    return paths


def read_brain(folder: str | Path) -> BrainAnatomy:
    """Read a subject written by :func:`write_brain` (the folder name is the subject ID)."""
    from voxflow.io.images import read_image

    folder = Path(folder)
    vols = {
        m: read_image(folder / f"{m}.nii.gz", dtype=None if m == "mask" else np.float32)
        for m in MAPS
    }
    return BrainAnatomy(folder.name, *(vols[m].data for m in MAPS), affine=vols["t1"].affine)


_WORKER_TEMPLATE: list[Template] = []  # a worker process's copy (sent once, not per subject)


def _set_worker_template(template: Template) -> None:
    _WORKER_TEMPLATE[:] = [template]


def worker_template() -> Template:
    """The template :func:`map_subjects` handed to this process."""
    if not _WORKER_TEMPLATE:
        raise VoxflowError("worker_template() outside map_subjects: no template was set")
    return _WORKER_TEMPLATE[0]


def map_subjects(
    fn: Callable[[Any], Any], jobs: Sequence[Any], template: Template, workers: int = 1
) -> list[Any]:
    """``[fn(job) for job in jobs]`` in ``workers`` processes (a cohort's subjects in
    parallel), each of which gets ``template`` once (``fn`` reads it with
    :func:`worker_template`); results in job order, so the cohort does not depend on
    ``workers``. ``fn`` must be a module-level function."""
    if workers > 1 and len(jobs) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(
            min(workers, len(jobs)), initializer=_set_worker_template, initargs=(template,)
        ) as pool:
            return list(pool.map(fn, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    _set_worker_template(template)
    return [fn(j) for j in jobs]


def config_from_dict(d: dict) -> BrainPhantomConfig:
    """Build the config from the workflow's ``brain_phantom`` block (unknown keys rejected)."""
    known = set(asdict(BrainPhantomConfig()))
    unknown = set(d) - known - {"subjects"}
    if unknown:
        raise VoxflowError(
            f"brain_phantom: unknown key(s) {sorted(unknown)}; allowed {sorted(known)}"
        )
    return BrainPhantomConfig(**{k: float(v) for k, v in d.items() if k in known})


def qc_table(subject_dirs: list[str | Path]) -> pd.DataFrame:
    """Per-subject tissue volumes (ml), grid and voxel size of written brain phantoms."""
    import pandas as pd

    rows = []
    for d in map(Path, subject_dirs):
        anat = read_brain(d)
        row = {
            "subject": anat.subject,
            "shape": "x".join(map(str, anat.t1.shape)),
            "voxel_mm": round(float(np.linalg.norm(anat.affine[:3, 0])), 4),
        }
        row.update({f"{k}_ml": v for k, v in anat.volumes_ml().items()})
        rows.append(row)
    return pd.DataFrame(rows)
