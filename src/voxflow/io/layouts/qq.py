"""QSM + qBOLD cohort layout (../shared/specs/qq.md; the Cornell data is private).

``<root>/<subject>/mgre.nii.gz`` (4D, echoes last), ``qsm.nii.gz`` (ppm), ``echo_times.json``
(seconds), ``gt/{S0,R2,Y,v,chi_nb}.nii.gz`` (ground truth, needed for training and scoring),
optional ``mask.nii.gz`` (voxels where the parameters are defined; default: where the QSM and
the first echo are non-zero). :func:`load_case` checks everything a model relies on and names
the subject and file in every error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import VoxflowError, input_error
from voxflow.io.images import Volume, check_finite, check_same_grid, read_image

GT_MAPS = ("S0", "R2", "Y", "v", "chi_nb")


@dataclass(frozen=True)
class QQCase:
    """One subject's files."""

    subject: str
    folder: Path

    @property
    def mgre(self) -> Path:
        return self.folder / "mgre.nii.gz"

    @property
    def qsm(self) -> Path:
        return self.folder / "qsm.nii.gz"

    @property
    def echo_times(self) -> Path:
        return self.folder / "echo_times.json"

    @property
    def mask(self) -> Path:
        return self.folder / "mask.nii.gz"

    def gt(self, name: str) -> Path:
        return self.folder / "gt" / f"{name}.nii.gz"


@dataclass
class QQData:
    """Arrays of one subject: mgre (X, Y, Z, E), qsm, mask, gt maps (or None), echo times."""

    subject: str
    mgre: np.ndarray
    qsm: np.ndarray
    mask: np.ndarray
    gt: dict[str, np.ndarray] | None
    echo_times: np.ndarray
    affine: np.ndarray


def read_cohort(root: str | Path) -> list[QQCase]:
    """Every sub-folder of ``root`` holding an ``mgre.nii.gz``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise input_error(root, "qq dataset root not found", "Set qq.cohort.root")
    cases = [QQCase(p.name, p) for p in sorted(root.iterdir()) if (p / "mgre.nii.gz").is_file()]
    if not cases:
        raise input_error(root, "no subject folder with an mgre.nii.gz", "Is this the qq layout?")
    return cases


def read_echo_times(path: Path, subject: str, n_echoes: int | None = None) -> np.ndarray:
    """Echo times in seconds: a JSON list of increasing positive numbers (``n_echoes`` of them,
    the configured count, when given)."""
    if not path.is_file():
        raise input_error(path, f"subject {subject}: missing echo_times.json")
    try:
        te = np.asarray(json.loads(path.read_text()), dtype=np.float64)
    except (ValueError, TypeError) as err:
        raise input_error(path, f"subject {subject}: not a JSON list of numbers ({err})") from err
    if te.ndim != 1 or te.size == 0 or not np.all(np.isfinite(te)) or np.any(te <= 0):
        raise input_error(path, f"subject {subject}: echo times must be positive numbers")
    if np.any(np.diff(te) <= 0):
        raise input_error(path, f"subject {subject}: echo times must increase")
    if te.max() > 1.0:
        raise input_error(
            path, f"subject {subject}: echo times up to {te.max():g} look like ms", "Store seconds"
        )
    if n_echoes is not None and te.size != n_echoes:
        raise input_error(
            path,
            f"subject {subject} has {te.size} echoes but qq.n_echoes is {n_echoes}",
            "Fix the subject or set qq.n_echoes",
        )
    return te


def load_case(case: QQCase, n_echoes: int, need_gt: bool = True) -> QQData:
    """Read and check one subject against the configured echo count."""
    te = read_echo_times(case.echo_times, case.subject, n_echoes)
    mgre = check_finite(read_image(case.mgre), "mGRE magnitude")
    if mgre.data.ndim != 4 or mgre.data.shape[3] != n_echoes:
        raise input_error(
            case.mgre,
            f"subject {case.subject}: mGRE of shape {mgre.shape} is not 4D with {n_echoes} "
            "echoes along the last axis",
        )
    qsm = check_finite(read_image(case.qsm), "QSM")
    if qsm.data.ndim != 3:
        raise input_error(case.qsm, f"subject {case.subject}: QSM must be 3D, got {qsm.shape}")
    check_same_grid(mgre, qsm)
    if case.mask.is_file():
        mvol = read_image(case.mask, dtype=None)
        check_same_grid(mgre, mvol)
        mask = np.asarray(mvol.data) > 0
    else:
        mask = (qsm.data != 0) & (mgre.data[..., 0] > 0)
    if not mask.any():
        raise input_error(case.mask, f"subject {case.subject}: the mask is empty")
    gt = None
    if need_gt:
        gt = {}
        for name in GT_MAPS:
            vol: Volume = check_finite(read_image(case.gt(name)), f"ground-truth {name}")
            check_same_grid(mgre, vol)
            gt[name] = vol.data
    return QQData(case.subject, mgre.data, qsm.data, mask, gt, te, mgre.affine)


def check_cohort_echoes(cases: list[QQCase], n_echoes: int) -> None:
    """Fail fast, before any work, if a subject's echo count differs from the config."""
    bad = []
    for c in cases:
        te = read_echo_times(c.echo_times, c.subject)
        if te.size != n_echoes:
            bad.append(f"{c.subject} ({te.size})")
    if bad:
        raise VoxflowError(
            f"qq.n_echoes is {n_echoes}, but subject(s) {', '.join(bad)} have another echo "
            "count; fix those subjects or the config"
        )
