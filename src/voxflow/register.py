"""Rigid MR -> CT registration (SimpleITK): Mattes mutual information, 6 degrees of freedom.

Convention: every transform maps FIXED (CT) physical points to MOVING (MR) physical points in
ITK/LPS millimetres, i.e. the transform ``sitk.Resample(moving, fixed, transform)`` uses.

Pipeline (:func:`register_rigid`):

1. Intensities. The CT is clipped to a soft-tissue window (``ct_window_hu``, default -50..150 HU).
   Unclipped, the skull (1000-1900 HU) and air (-1000 HU) span ~95 % of the CT's range, so with 32
   histogram bins grey matter, white matter and CSF (0-45 HU) share one or two bins and MI is
   driven by the skull, which a brain-only T1 does not show at all. Clipped, the brain tissues
   spread over ~10 bins, while the skull still forms one bright class whose inner edge outlines
   the brain. Samples are drawn only inside a head mask (CT above ``head_threshold_hu``, largest
   component, dilated by ``mask_dilation_mm``): air carries no information and would otherwise
   take most samples.
2. Grids. Each level works on block-averaged copies (``sitk.BinShrink``) of both images at about
   ``level_spacing_mm`` (never finer than the image's own spacing, so a 0.5x0.5x5 mm CT becomes
   1x1x5 mm at the last level), optionally Gaussian-smoothed (``smoothing_sigmas_mm``).
3. Initialisation. Centres of mass of the two foreground masks are aligned
   (``CenteredTransformInitializer`` MOMENTS on binary masks, so neither the bright skull nor the
   T1 contrast biases it), then the metric is evaluated on a grid of rotations about that centre
   at the coarsest level; the ``search_top_k`` best start a short coarse optimisation each and the
   best result is kept, so a start within the grid's reach does not end in a wrong basin.
4. Optimisation. Regular-step gradient descent per level, scales from physical shift (a unit
   step moves no voxel more than about 1 mm), samples on a jittered regular grid with a fixed
   seed, so reruns give identical transforms for a given number of threads.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import atomic_path

log = logging.getLogger(__name__)

_STRATEGIES = ("regular", "random", "none")
_INITS = ("moments", "geometry", "none")


@dataclass(frozen=True)
class RegistrationConfig:
    """Settings of :func:`register_rigid`; per-level tuples run coarse to fine."""

    level_spacing_mm: tuple[float, ...] = (4.0, 2.0, 1.0)
    smoothing_sigmas_mm: tuple[float, ...] = (2.0, 1.0, 0.0)
    iterations: tuple[int, ...] = (100, 60, 40)
    sampling_percentage: tuple[float, ...] = (0.3, 0.15, 0.05)
    sampling_strategy: str = "regular"
    histogram_bins: int = 32
    ct_window_hu: tuple[float, float] | None = (-50.0, 150.0)
    head_threshold_hu: float = -400.0
    mask_dilation_mm: float = 6.0
    initialization: str = "moments"
    search_angles_deg: tuple[float, ...] = (-20.0, -10.0, 0.0, 10.0, 20.0)
    search_top_k: int = 3
    learning_rate: float = 2.0
    min_step: float = 0.005
    relaxation: float = 0.6
    gradient_tolerance: float = 1e-6
    seed: int = 20240611
    threads: int = 0

    def __post_init__(self) -> None:
        n = len(self.level_spacing_mm)
        if n == 0:
            raise _config_error("level_spacing_mm", "needs at least one level")
        for name in ("smoothing_sigmas_mm", "iterations", "sampling_percentage"):
            if len(getattr(self, name)) != n:
                raise _config_error(name, f"needs {n} values, one per level (level_spacing_mm)")
        if any(s <= 0 for s in self.level_spacing_mm):
            raise _config_error("level_spacing_mm", "values must be > 0")
        if any(s < 0 for s in self.smoothing_sigmas_mm):
            raise _config_error("smoothing_sigmas_mm", "values must be >= 0")
        if any(int(i) < 1 for i in self.iterations):
            raise _config_error("iterations", "values must be >= 1")
        if any(not 0 < p <= 1 for p in self.sampling_percentage):
            raise _config_error("sampling_percentage", "values must be in (0, 1]")
        if self.sampling_strategy not in _STRATEGIES:
            raise _config_error("sampling_strategy", f"must be one of {_STRATEGIES}")
        if self.initialization not in _INITS:
            raise _config_error("initialization", f"must be one of {_INITS}")
        if self.histogram_bins < 4:
            raise _config_error("histogram_bins", "must be >= 4")
        if self.ct_window_hu is not None and not self.ct_window_hu[0] < self.ct_window_hu[1]:
            raise _config_error("ct_window_hu", "must be [low, high] with low < high, or null")
        if self.search_top_k < 1:
            raise _config_error("search_top_k", "must be >= 1")
        if not (self.learning_rate > 0 and self.min_step > 0 and 0 < self.relaxation < 1):
            raise _config_error(
                "learning_rate/min_step/relaxation", "need rates > 0 and 0 < relaxation < 1"
            )
        if self.seed < 1:
            raise _config_error("seed", "must be >= 1 (0 would mean 'seed from the clock')")
        if self.threads < 0:
            raise _config_error("threads", "must be >= 0 (0 = SimpleITK's default)")

    @classmethod
    def from_dict(cls, d: dict | None) -> RegistrationConfig:
        """Build from a config mapping (lists become tuples); unknown keys are an error."""
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise VoxflowError(
                f"registration config: unknown key(s) {unknown}. Valid keys: {sorted(known)}"
            )
        out = {}
        for k, v in d.items():
            out[k] = tuple(v) if isinstance(v, list) else v
        try:
            return cls(**out)
        except TypeError as err:
            raise VoxflowError(f"registration config: {err}") from err


def _config_error(key: str, reason: str) -> VoxflowError:
    return VoxflowError(f"registration config: {key} {reason}")


@dataclass
class RigidResult:
    """A rigid registration: fixed -> moving transform (LPS mm) and how it was found."""

    transform: sitk.Euler3DTransform
    metric: float
    seconds: float
    iterations: tuple[int, ...] = ()
    stop_conditions: tuple[str, ...] = ()
    start_rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    extra: dict = field(default_factory=dict)

    @property
    def rotation_deg(self) -> tuple[float, float, float]:
        """Euler angles (x, y, z) of the transform in degrees."""
        t = self.transform
        return tuple(float(np.rad2deg(a)) for a in (t.GetAngleX(), t.GetAngleY(), t.GetAngleZ()))

    @property
    def translation_mm(self) -> tuple[float, float, float]:
        return tuple(float(v) for v in self.transform.GetTranslation())


# --------------------------------------------------------------------------- input checks


def _check_image(img: sitk.Image, path: str | Path, what: str) -> None:
    """Raise a one-line VoxflowError for a 2D, multi-component, non-finite or constant image."""
    if img.GetDimension() != 3 or min(img.GetSize()) < 2:
        raise input_error(
            path, f"{what} is not a 3D volume (size {img.GetSize()})", "Give a 3D NIfTI image"
        )
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise input_error(path, f"{what} has {img.GetNumberOfComponentsPerPixel()} components")
    arr = sitk.GetArrayViewFromImage(img)
    if np.issubdtype(arr.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        if bad:
            raise input_error(path, f"{bad} NaN/inf voxel(s) in the {what}", "Fix or mask it")
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise input_error(path, f"{what} is empty (every voxel is {lo:g})")


def _one_line(err: Exception) -> str:
    """The informative line of a (multi-line) ITK exception message."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("Description:"):
            return ln.removeprefix("Description:").strip()
    return lines[-1] if lines else type(err).__name__


# --------------------------------------------------------------------------- preprocessing


def _as_float(img: sitk.Image) -> sitk.Image:
    return img if img.GetPixelID() == sitk.sitkFloat32 else sitk.Cast(img, sitk.sitkFloat32)


def _largest_component(mask: sitk.Image) -> sitk.Image:
    cc = sitk.RelabelComponent(sitk.ConnectedComponent(mask), sortByObjectSize=True)
    return sitk.Cast(cc == 1, sitk.sitkUInt8)


def _dilate_mm(mask: sitk.Image, mm: float) -> sitk.Image:
    radius = [int(round(mm / s)) for s in mask.GetSpacing()]
    if mm <= 0 or not any(radius):
        return mask
    return sitk.BinaryDilate(mask, radius, sitk.sitkBall)


def _foreground(img: sitk.Image, threshold: float | None) -> sitk.Image:
    """Largest connected component above ``threshold`` (Otsu if None), holes filled."""
    if threshold is None:
        mask = sitk.OtsuThreshold(img, 0, 1)
    else:
        mask = sitk.Cast(img > threshold, sitk.sitkUInt8)
    if not sitk.GetArrayViewFromImage(mask).any():
        return mask
    return sitk.BinaryFillhole(_largest_component(mask))


def _shrink(img: sitk.Image, spacing_mm: float, sigma_mm: float) -> sitk.Image:
    """Block-average to about ``spacing_mm`` per axis (never finer than the image), then smooth."""
    factors = [max(1, int(round(spacing_mm / s))) for s in img.GetSpacing()]
    out = sitk.BinShrink(img, factors) if max(factors) > 1 else img
    if sigma_mm > 0:
        # only along axes where the kernel is at least half a voxel wide; variance in mm^2
        var = [sigma_mm**2 if sigma_mm >= 0.5 * s else 0.0 for s in out.GetSpacing()]
        if any(var):
            out = sitk.DiscreteGaussian(out, var, 32, 0.01, True)
    return out


def _shrink_mask(mask: sitk.Image, ref: sitk.Image) -> sitk.Image:
    return sitk.Resample(mask, ref, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


# --------------------------------------------------------------------------- registration


def _method(cfg: RegistrationConfig, level: int, mask: sitk.Image) -> sitk.ImageRegistrationMethod:
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(cfg.histogram_bins)
    strategy = {"regular": reg.REGULAR, "random": reg.RANDOM, "none": reg.NONE}
    reg.SetMetricSamplingStrategy(strategy[cfg.sampling_strategy])
    if cfg.sampling_strategy != "none":
        reg.SetMetricSamplingPercentage(float(cfg.sampling_percentage[level]), cfg.seed)
    reg.SetMetricFixedMask(mask)
    reg.SetInterpolator(sitk.sitkLinear)
    if cfg.threads:
        reg.SetNumberOfThreads(cfg.threads)
    return reg


def _optimise(
    fixed: sitk.Image,
    moving: sitk.Image,
    mask: sitk.Image,
    start: sitk.Euler3DTransform,
    cfg: RegistrationConfig,
    level: int,
    iterations: int,
) -> tuple[sitk.Euler3DTransform, float, int, str]:
    reg = _method(cfg, level, mask)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=cfg.learning_rate / 2**level,
        minStep=cfg.min_step,
        numberOfIterations=int(iterations),
        relaxationFactor=cfg.relaxation,
        gradientMagnitudeTolerance=cfg.gradient_tolerance,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetInitialTransform(sitk.Euler3DTransform(start), inPlace=True)
    out = reg.Execute(fixed, moving)
    tx = sitk.Euler3DTransform(sitk.CompositeTransform(out).GetBackTransform())
    return (
        tx,
        float(reg.GetMetricValue()),
        int(reg.GetOptimizerIteration()),
        (reg.GetOptimizerStopConditionDescription()),
    )


def _rotation_search(
    fixed: sitk.Image,
    moving: sitk.Image,
    mask: sitk.Image,
    start: sitk.Euler3DTransform,
    cfg: RegistrationConfig,
) -> list[tuple[float, np.ndarray]]:
    """Metric at every rotation of the search grid about the start's centre, best first."""
    angles = np.deg2rad(np.asarray(cfg.search_angles_deg, dtype=np.float64))
    if len(angles) == 0:
        return [(np.nan, np.zeros(3))]
    reg = _method(cfg, 0, mask)
    # One exhaustive run is ~10x cheaper than re-initialising the metric per candidate; the
    # grid need not be regular, so evaluate our angles as offsets from the smallest one.
    step = np.diff(np.unique(angles))
    regular = len(angles) > 1 and np.allclose(step, step[0]) and len(step) == len(angles) - 1
    values: list[tuple[float, np.ndarray]] = []
    if regular:
        n = (len(angles) - 1) // 2
        centre = float(angles.min() + n * step[0])
        tx = sitk.Euler3DTransform(start)
        tx.SetRotation(centre, centre, centre)
        reg.SetOptimizerAsExhaustive([n, n, n, 0, 0, 0], float(step[0]))
        reg.SetOptimizerScales([1.0] * 6)
        reg.SetInitialTransform(tx, inPlace=True)
        reg.AddCommand(
            sitk.sitkIterationEvent,
            lambda: values.append(
                (reg.GetMetricValue(), np.asarray(reg.GetOptimizerPosition()[:3]))
            ),
        )
        reg.Execute(fixed, moving)
    else:
        for ax, ay, az in itertools.product(angles, repeat=3):
            tx = sitk.Euler3DTransform(start)
            tx.SetRotation(ax, ay, az)
            reg.SetInitialTransform(tx, inPlace=True)
            try:
                values.append((reg.MetricEvaluate(fixed, moving), np.array([ax, ay, az])))
            except RuntimeError:
                continue
    values.sort(key=lambda v: (v[0], float(np.abs(v[1]).sum())))
    return values


def _initial_transform(
    fixed: sitk.Image,
    moving: sitk.Image,
    fixed_mask: sitk.Image,
    moving_mask: sitk.Image,
    cfg: RegistrationConfig,
) -> sitk.Euler3DTransform:
    if cfg.initialization == "none":
        tx = sitk.Euler3DTransform()
        stats = sitk.LabelShapeStatisticsImageFilter()
        stats.Execute(fixed_mask)
        tx.SetCenter(stats.GetCentroid(1))
        return tx
    if cfg.initialization == "geometry":
        init = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
        )
    else:
        init = sitk.CenteredTransformInitializer(
            sitk.Cast(fixed_mask, sitk.sitkFloat32),
            sitk.Cast(moving_mask, sitk.sitkFloat32),
            sitk.Euler3DTransform(),
            sitk.CenteredTransformInitializerFilter.MOMENTS,
        )
    return sitk.Euler3DTransform(init)


def register_rigid(
    fixed: sitk.Image,
    moving: sitk.Image,
    cfg: RegistrationConfig,
    fixed_path: str | Path = "fixed",
    moving_path: str | Path = "moving",
) -> RigidResult:
    """Rigidly register ``moving`` (MR) to ``fixed`` (CT); see the module docstring."""
    t0 = time.perf_counter()
    _check_image(fixed, fixed_path, "fixed image")
    _check_image(moving, moving_path, "moving image")
    fixed_f, moving_f = _as_float(fixed), _as_float(moving)
    if cfg.ct_window_hu is not None:
        head = _foreground(fixed_f, cfg.head_threshold_hu)
        fixed_f = sitk.Clamp(fixed_f, sitk.sitkFloat32, *map(float, cfg.ct_window_hu))
    else:
        head = _foreground(fixed_f, None)
    moving_mask = _foreground(moving_f, None)
    for img, path, what in ((head, fixed_path, "fixed"), (moving_mask, moving_path, "moving")):
        if not sitk.GetArrayViewFromImage(img).any():
            raise input_error(path, f"no foreground found in the {what} image")
    fixed_mask = _dilate_mm(head, cfg.mask_dilation_mm)

    levels = range(len(cfg.level_spacing_mm))
    pyr_f = [_shrink(fixed_f, cfg.level_spacing_mm[i], cfg.smoothing_sigmas_mm[i]) for i in levels]
    pyr_m = [_shrink(moving_f, cfg.level_spacing_mm[i], cfg.smoothing_sigmas_mm[i]) for i in levels]
    pyr_k = [_shrink_mask(fixed_mask, f) for f in pyr_f]
    t_prep = time.perf_counter() - t0

    try:
        tx = _initial_transform(fixed_f, moving_f, head, moving_mask, cfg)
        cands = _rotation_search(pyr_f[0], pyr_m[0], pyr_k[0], tx, cfg)
        if not cands:
            raise RuntimeError("All samples map outside moving image buffer")
        t_search = time.perf_counter() - t0 - t_prep
        best = None
        for value, rot in cands[: cfg.search_top_k]:
            start = sitk.Euler3DTransform(tx)
            start.SetRotation(*map(float, rot))
            try:
                res = _optimise(pyr_f[0], pyr_m[0], pyr_k[0], start, cfg, 0, cfg.iterations[0])
            except RuntimeError:
                if best is None and len(cands) == 1:
                    raise
                continue
            log.debug("start %s deg: metric %.4f -> %.4f", np.rad2deg(rot), value, res[1])
            if best is None or res[1] < best[0][1]:
                best = (res, rot)
        if best is None:
            raise RuntimeError("every start of the rotation search failed")
        (tx, metric, it0, stop0), rot = best
        iters, stops = [it0], [stop0]
        for lvl in levels[1:]:
            tx, metric, it, stop = _optimise(
                pyr_f[lvl], pyr_m[lvl], pyr_k[lvl], tx, cfg, lvl, cfg.iterations[lvl]
            )
            iters.append(it)
            stops.append(stop)
    except RuntimeError as err:
        raise input_error(
            moving_path,
            f"registration to {fixed_path} failed ({_one_line(err)})",
            "Do the images overlap (same subject, sensible headers)?",
        ) from err
    seconds = time.perf_counter() - t0
    result = RigidResult(
        transform=tx,
        metric=metric,
        seconds=seconds,
        iterations=tuple(iters),
        stop_conditions=tuple(stops),
        start_rotation_deg=tuple(float(a) for a in np.rad2deg(rot)),
        extra={"prep_seconds": t_prep, "search_seconds": t_search},
    )
    log.info(
        "rigid %s -> %s: MI %.4f, rotation %s deg, translation %s mm, %.1f s",
        moving_path,
        fixed_path,
        metric,
        np.round(result.rotation_deg, 2).tolist(),
        np.round(result.translation_mm, 2).tolist(),
        seconds,
    )
    return result


# --------------------------------------------------------------------------- evaluation


def _affine_parts(t: sitk.Transform) -> tuple[np.ndarray, np.ndarray] | None:
    """(A, b) with t(p) = A p + b for a matrix-offset transform, else None."""
    try:
        t = t.Downcast()
    except (AttributeError, RuntimeError):
        return None
    if not all(hasattr(t, m) for m in ("GetMatrix", "GetTranslation", "GetCenter")):
        return None
    a = np.asarray(t.GetMatrix(), dtype=np.float64).reshape(3, 3)
    c = np.asarray(t.GetCenter(), dtype=np.float64)
    return a, np.asarray(t.GetTranslation(), dtype=np.float64) + c - a @ c


def _apply(t: sitk.Transform, pts: np.ndarray) -> np.ndarray:
    parts = _affine_parts(t)
    if parts is not None:
        a, b = parts
        return pts @ a.T + b
    return np.array([t.TransformPoint(tuple(map(float, p))) for p in pts])


def voxel_centres(image: sitk.Image, mask: np.ndarray) -> np.ndarray:
    """Physical (LPS mm) centres of the ``mask`` voxels (``mask`` in sitk array order z, y, x)."""
    idx = np.argwhere(mask)[:, ::-1].astype(np.float64)  # -> (x, y, z) index order
    d = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    sp = np.asarray(image.GetSpacing(), dtype=np.float64)
    return (idx * sp) @ d.T + np.asarray(image.GetOrigin(), dtype=np.float64)


def target_registration_error(
    estimated: sitk.Transform,
    truth: sitk.Transform,
    fixed: sitk.Image,
    mask: np.ndarray | None = None,
    max_points: int = 200_000,
) -> float:
    """Mean distance (mm) between ``estimated(p)`` and ``truth(p)`` over fixed-image voxels ``p``.

    ``p`` are the centres of ``mask`` (boolean, sitk array order) or, without one, of the fixed
    image's foreground: voxels above min + 10 % of the intensity range (the head in a CT, the
    brain or head in an MR). Above ``max_points`` voxels an evenly spaced subset is used.
    """
    if mask is None:
        arr = sitk.GetArrayViewFromImage(fixed)
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        mask = arr > lo + 0.1 * (hi - lo)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != tuple(reversed(fixed.GetSize())):
        raise VoxflowError(
            f"TRE mask shape {mask.shape} differs from the fixed image {fixed.GetSize()[::-1]}"
        )
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise VoxflowError("TRE: the mask (or the fixed image's foreground) is empty")
    pts = voxel_centres(fixed, mask)
    if n > max_points:
        pts = pts[np.linspace(0, n - 1, max_points).round().astype(np.int64)]
    diff = _apply(estimated, pts) - _apply(truth, pts)
    return float(np.linalg.norm(diff, axis=1).mean())


# --------------------------------------------------------------------------- files


def _read(path: str | Path, what: str) -> sitk.Image:
    path = Path(path)
    if not path.is_file():
        raise input_error(path, f"{what} not found")
    try:
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        raise input_error(path, f"cannot read {what} ({_one_line(err)})") from err


def _labels_uint8(labels: sitk.Image, path: str | Path) -> sitk.Image:
    if labels.GetDimension() != 3 or labels.GetNumberOfComponentsPerPixel() != 1:
        raise input_error(path, f"label image is not a 3D scalar volume (size {labels.GetSize()})")
    arr = sitk.GetArrayViewFromImage(labels)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)):
            raise input_error(path, "NaN/inf in the label image")
        if not np.array_equal(arr, np.round(arr)):
            raise input_error(path, "label image holds non-integer values", "Is it a label map?")
    lo, hi = float(arr.min()), float(arr.max())
    if lo < 0 or hi > 255:
        raise input_error(path, f"label values {lo:g}..{hi:g} do not fit uint8 (0-255)")
    return sitk.Cast(labels, sitk.sitkUInt8)


def resample_labels(labels: sitk.Image, reference: sitk.Image, transform: sitk.Transform):
    """Labels (moving space) onto the reference grid, nearest neighbour, uint8, 0 outside."""
    return sitk.Resample(labels, reference, transform, sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)


def _qc_png(
    ct: sitk.Image, mr_on_ct: sitk.Image, labels_on_ct: sitk.Image, path: Path, title: str
) -> None:
    """CT (brain window 0-80 HU) with the resampled MR's edges and labels, 3 orthogonal slices."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ct_a = sitk.GetArrayFromImage(ct).astype(np.float32)
    mr_a = sitk.GetArrayFromImage(mr_on_ct).astype(np.float32)
    lab = sitk.GetArrayFromImage(labels_on_ct)
    where = np.argwhere(lab > 0) if lab.any() else np.argwhere(mr_a > mr_a.mean())
    if where.size == 0:
        where = np.argwhere(np.ones_like(lab, dtype=bool))
    k, j, i = (int(v) for v in np.round(where.mean(axis=0)))
    sx, sy, sz = ct.GetSpacing()
    nz, ny, nx = ct_a.shape
    edge_level = float(np.percentile(mr_a[mr_a > 0], 50)) if (mr_a > 0).any() else 0.5
    views = [
        ("axial", (slice(k, k + 1), slice(None), slice(None)), (0, nx * sx, ny * sy, 0)),
        ("coronal", (slice(None), slice(j, j + 1), slice(None)), (0, nx * sx, 0, nz * sz)),
        ("sagittal", (slice(None), slice(None), slice(i, i + 1)), (0, ny * sy, 0, nz * sz)),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
    for ax, (name, sl, extent) in zip(axes, views, strict=True):
        c, m, lb = (np.squeeze(a[sl]) for a in (ct_a, mr_a, lab))
        origin = "upper" if name == "axial" else "lower"
        ax.imshow(c, cmap="gray", vmin=0, vmax=80, extent=extent, origin=origin)
        if lb.any():
            ax.imshow(
                np.ma.masked_where(lb == 0, lb),
                cmap="tab20",
                alpha=0.35,
                extent=extent,
                origin=origin,
                interpolation="nearest",
                vmin=0,
                vmax=max(int(lab.max()), 1),
            )
        if m.max() > edge_level:
            ax.contour(
                m,
                levels=[edge_level],
                colors="yellow",
                linewidths=0.6,
                extent=extent,
                origin=origin,
            )
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=9)
    try:
        fig.savefig(path, dpi=100, bbox_inches="tight", format="png", metadata={"Software": None})
    finally:
        plt.close(fig)


def register_mr_to_ct(
    ct_path: str | Path,
    mr_path: str | Path,
    labels_path: str | Path,
    out_transform: str | Path,
    out_labels: str | Path,
    out_qc_png: str | Path,
    cfg: RegistrationConfig,
) -> RigidResult:
    """Register an MR (moving) to a CT (fixed); write the CT -> MR ``.tfm``, the MR labels on the
    CT grid (nearest neighbour, uint8 NIfTI) and a QC PNG. Nothing is written unless all succeed.
    """
    ct = _read(ct_path, "CT image")
    mr = _read(mr_path, "MR image")
    labels = _labels_uint8(_read(labels_path, "label image"), labels_path)
    result = register_rigid(ct, mr, cfg, fixed_path=ct_path, moving_path=mr_path)
    labels_ct = resample_labels(labels, ct, result.transform)
    mr_ct = sitk.Resample(_as_float(mr), ct, result.transform, sitk.sitkLinear, 0.0)
    r, t = np.round(result.rotation_deg, 2).tolist(), np.round(result.translation_mm, 1).tolist()
    title = f"{Path(mr_path).name} -> {Path(ct_path).name}: rot {r} deg, shift {t} mm"
    with (
        atomic_path(out_transform) as tmp_tfm,
        atomic_path(out_labels) as tmp_lab,
        atomic_path(out_qc_png) as tmp_png,
    ):
        sitk.WriteTransform(result.transform, str(tmp_tfm))
        sitk.WriteImage(labels_ct, str(tmp_lab), useCompression=True)
        _qc_png(ct, mr_ct, labels_ct, Path(tmp_png), title)
    return result
