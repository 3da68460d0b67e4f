"""Cohort integrity check (``voxflow check``): every problem of a real cohort, before any job.

In the spirit of nnU-Net's dataset verification: each subject has every configured channel, echo
or series; image and label grids match (shape, affine within 1e-3 mm); labels hold only the
allowed values and are not empty; no NaN/Inf, no empty or 2D image where a volume is needed;
DICOM series convert (no corrupt file, mixed series or missing slice); label tables name existing
subjects; and there are enough subjects for the configured split. Unlike the stages, which stop
at the first problem, the check reports them all, one line each naming the file and the reason.

The workflow runs it at DAG build for every study whose ``<study>.cohort.root`` is set (and for
``ms.real_check``), caching a passed check under ``.snakemake/voxflow/`` keyed by the files'
sizes and modification times and the settings the check depends on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxflow.errors import VoxflowError, collecting, input_error

log = logging.getLogger(__name__)

STUDIES = ("ms", "qq", "gwr", "l3", "mgmt")
# what a passed check depends on besides the files (a change re-runs the check)
CHECK_KEYS = {
    "ms": ["cohort", "channels", "split"],
    "qq": ["cohort", "n_echoes", "split"],
    "gwr": ["cohort", "labels", "val_fraction"],
    "l3": ["cohort", "labels", "folds"],
    "mgmt": ["cohort", "exclude", "series", "series_2d", "split"],
}
CHECK_VERSION = 1


@dataclass
class Report:
    """The problems found in one cohort (one line each) and how many subjects were checked."""

    study: str
    root: Path
    subjects: int = 0
    problems: list[str] = field(default_factory=list)

    def collecting(self, where: Path | None = None) -> AbstractContextManager[None]:
        """Record a ``VoxflowError`` raised in the block as a problem (prefixed with ``where``
        when given) and go on."""
        return collecting(self.problems, where)

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        """One line: the verdict."""
        n = len(self.problems)
        verdict = "no problems" if not n else f"{n} problem{'s' * (n != 1)}"
        return f"{self.root}: {self.study} cohort of {self.subjects} subject(s), {verdict}"

    def text(self) -> str:
        """The verdict, then one line per problem."""
        return "\n".join([self.summary(), *(f"  {p}" for p in self.problems)])


# ---- per-file checks ----------------------------------------------------------------------------
def _image(report: Report, path: Path, what: str, ndim: int = 3, label: bool = False):
    """The image at ``path`` if it is there, readable, ``ndim``-D, finite and not empty."""
    from voxflow.io.images import check_finite, read_image

    if not path.is_file():
        report.problems.append(f"{path}: missing {what}. Is the dataset complete?")
        return None
    with report.collecting():
        vol = read_image(path, dtype=None if label else np.float32)
        while vol.data.ndim > ndim and vol.data.shape[-1] == 1:  # (X, Y, Z, 1) is 3D
            vol.data = vol.data[..., 0]
        if vol.data.ndim != ndim:
            raise input_error(
                path, f"{what} is {vol.data.ndim}D {vol.shape}; a {ndim}D image is needed"
            )
        check_finite(vol, what)
        if not label and vol.data.size and vol.data.min() == vol.data.max():
            raise input_error(path, f"empty {what} (every voxel is {vol.data.flat[0]:g})")
        return vol
    return None


def _same_grid(report: Report, volumes: list) -> None:
    """Every volume on the grid of the first one (missing ones skipped)."""
    from voxflow.io.images import check_same_grid

    present = [v for v in volumes if v is not None]
    for vol in present[1:]:
        with report.collecting():
            check_same_grid(present[0], vol)


def _labels(
    report: Report, vol, allowed: set[int], what: str, required: set[int] | None = None
) -> None:
    """Label values: integers in ``allowed``; not empty; every ``required`` value present."""
    if vol is None:
        return
    values = np.unique(vol.data)
    if np.any(values != np.round(values)):
        report.problems.append(
            f"{vol.path}: {what} holds non-integer values {values[:5].tolist()}. "
            "Labels must be integers"
        )
        return
    found = {int(v) for v in values}
    extra = sorted(found - allowed - {0})
    if extra:
        report.problems.append(
            f"{vol.path}: {what} holds value(s) {extra[:8]} outside the allowed "
            f"{sorted(allowed | {0})}"
        )
    if not found - {0}:
        report.problems.append(f"{vol.path}: empty {what} (no labelled voxel)")
    elif required and (required - found):
        report.problems.append(
            f"{vol.path}: {what} lacks label value(s) {sorted(required - found)}"
        )


def _series(report: Report, folder: Path, dicom: Mapping[str, Any], plane: str | None = None):
    """The volume the DICOM stage would convert from ``folder`` (None after a problem)."""
    from voxflow.io.dicom import read_series

    series = dicom.get("series", {})
    with report.collecting():
        return read_series(
            folder,
            description=series.get("description"),
            plane=series.get("plane") or plane,
            min_slices=dicom.get("min_slices", 2),
            gantry_tilt=dicom.get("gantry_tilt", "resample"),
        )
    return None


def _volume(report: Report, conv, folder: Path, what: str):
    """A converted DICOM series that must be one non-empty 3D volume."""
    if conv is None:
        return None
    if conv.data.ndim != 3:
        report.problems.append(
            f"{folder}: {what} is {conv.data.ndim}D {conv.data.shape}; 3D needed"
        )
        return None
    if conv.data.min() == conv.data.max():
        report.problems.append(f"{folder}: empty {what} (every voxel is {conv.data.flat[0]:g})")
        return None
    return conv


# ---- studies ------------------------------------------------------------------------------------
def check_ms(
    root: Path, config: Mapping[str, Any], layout: str | None = None, split: bool = True
) -> Report:
    """MS cohort: channels and first-rater mask per case, one grid, binary non-empty mask."""
    from voxflow.io.layouts.ms import read_cohort

    cfg = config["ms"]
    report = Report("ms", root)
    layout = layout or cfg["cohort"].get("layout", "isbi2015")
    with report.collecting():
        cases = read_cohort(layout, root, report.problems)
        report.subjects = len(cases)
        for case in cases:
            channels = [c for c in cfg["channels"] if c in case.channels]
            vols = [_image(report, case.channels[c], f"{c} image") for c in channels]
            mask = _image(report, case.mask, "lesion mask", label=True)
            _same_grid(report, [*vols, mask])
            _labels(report, mask, {1}, "lesion mask (binary 0/1)")
        if split:
            from voxflow.studies.ms import make_split

            with report.collecting(root):
                make_split([c.case for c in cases], config["seed"], cfg["split"])
    return report


def check_qq(root: Path, config: Mapping[str, Any], split: bool = True) -> Report:
    """QSM+qBOLD cohort: echo times, 4D mGRE with the configured echoes, QSM, GT maps, mask."""
    from voxflow.io.layouts.qq import GT_MAPS, read_cohort, read_echo_times

    cfg = config["qq"]
    report = Report("qq", root)
    n_echoes = cfg["n_echoes"]
    with report.collecting():
        cases = read_cohort(root)
        report.subjects = len(cases)
        for case in cases:
            with report.collecting():
                read_echo_times(case.echo_times, case.subject, n_echoes)
            mgre = _image(report, case.mgre, "mGRE magnitude", ndim=4)
            if mgre is not None and mgre.data.shape[3] != n_echoes:
                report.problems.append(
                    f"{case.mgre}: mGRE has {mgre.data.shape[3]} echoes along its last axis but "
                    f"qq.n_echoes is {n_echoes}"
                )
            maps = [_image(report, case.qsm, "QSM")]
            maps += [_image(report, case.gt(m), f"ground-truth {m}") for m in GT_MAPS]
            mask = _image(report, case.mask, "mask", label=True) if case.mask.is_file() else None
            _same_grid(report, [mgre, *maps, mask])
            _labels(report, mask, {1}, "mask (binary 0/1)")
        if split:
            from voxflow.studies.qq import make_split

            s = cfg["split"]
            with report.collecting(root):
                make_split([c.subject for c in cases], config["seed"], s["test"], s["val"])
    return report


def check_gwr(root: Path, config: Mapping[str, Any], split: bool = True) -> Report:
    """Post-arrest cohort: CT series, MR, MR landmarks (configured values), outcomes.csv."""
    from voxflow.io.layouts.gwr import read_cohort, read_outcome_rows

    cfg = config["gwr"]
    report = Report("gwr", root)
    labels = set(cfg["labels"].values())
    with report.collecting():
        cases = read_cohort(root, report.problems)
        report.subjects = len(cases)
        for case in cases:
            if case.ct.is_dir():
                _volume(report, _series(report, case.ct, config["dicom"]), case.ct, "CT")
            mr = _image(report, case.mr, "MR") if case.mr.exists() else None
            if case.mr_labels.exists():
                lab = _image(report, case.mr_labels, "MR landmark labels", label=True)
                _same_grid(report, [mr, lab])
                _labels(report, lab, labels, "MR landmark labels", required=labels)
        outcomes = root / "outcomes.csv"
        if outcomes.is_file():
            read_outcome_rows(outcomes, [c.patient for c in cases], report.problems)
        if split:
            from voxflow.studies.gwr import make_split

            with report.collecting(root):
                make_split([c.patient for c in cases], config["seed"], cfg["val_fraction"])
    return report


def check_l3(root: Path, config: Mapping[str, Any], split: bool = True) -> Report:
    """Whole-body CT cohort: an axial series per patient and its L3 labels (CSV or mask)."""
    from voxflow.io.layouts.l3 import (
        LABELS_CSV,
        l3_from_mask,
        l3_from_row,
        read_labels,
        read_patients,
    )

    cfg = config["l3"]
    report = Report("l3", root)
    with report.collecting():
        patients = read_patients(root)
        report.subjects = len(patients)
        cts = {
            p: _volume(report, _series(report, root / p, config["dicom"], "axial"), root / p, "CT")
            for p in patients
        }
        if cfg["labels"]["source"] == "csv":
            with report.collecting():
                rows = read_labels(root / LABELS_CSV, patients, report.problems)
                for p, row in rows.items():
                    if cts.get(p) is not None:
                        with report.collecting():
                            l3_from_row(row, cts[p].affine, cts[p].data.shape[2])
        else:
            for p in patients:
                path = root / p / cfg["labels"]["mask_name"]
                mask = _image(report, path, "vertebra mask", label=True)
                if mask is None:
                    continue
                if cts[p] is not None and mask.shape != cts[p].data.shape:
                    report.problems.append(
                        f"{path}: shape {mask.shape} differs from the CT's {cts[p].data.shape}. "
                        "The mask must be on the CT grid"
                    )
                with report.collecting():
                    l3_from_mask(mask.data, cfg["labels"]["l3_value"], path)
        if split:
            from voxflow.studies.l3 import make_folds

            with report.collecting(root):
                make_folds(patients, config["seed"], cfg["folds"])
    return report


def check_mgmt(root: Path, config: Mapping[str, Any], split: bool = True) -> Report:
    """RSNA-MICCAI cohort: label rows and folders, the configured series as 3D volumes."""
    from voxflow.io.layouts.mgmt import read_patients, series_folder

    cfg = config["mgmt"]
    report = Report("mgmt", root)
    series = [cfg["series"]] if isinstance(cfg["series"], str) else list(cfg["series"])
    needed = list(dict.fromkeys([*series, cfg["series_2d"]]))
    with report.collecting():
        labels = read_patients(root, cfg["exclude"], needed, report.problems)
        report.subjects = len(labels)
        for pid in labels:
            for name in needed:
                folder = series_folder(root, pid, name)
                _volume(report, _series(report, folder, config["dicom"]), folder, name)
        if split:
            from voxflow.studies.mgmt import make_splits

            s = cfg["split"]
            with report.collecting(root):
                make_splits(labels, config["seed"], s["holdout"], s["folds"], s["random_state"])
    return report


def check_cohort(
    study: str,
    root: str | Path,
    config: Mapping[str, Any],
    layout: str | None = None,
    split: bool = True,
) -> Report:
    """Check the cohort of ``study`` at ``root`` under ``config`` (the validated workflow config);
    ``split=False`` leaves out the split-size check (a cohort that is only evaluated)."""
    root = Path(root)
    if study not in STUDIES:
        raise VoxflowError(f"unknown study '{study}'; use one of {', '.join(STUDIES)}")
    if not root.is_dir():
        return Report(study, root, problems=[f"{root}: cohort root not found (not a folder)"])
    if study == "ms":
        return check_ms(root, config, layout, split)
    checks = {"qq": check_qq, "gwr": check_gwr, "l3": check_l3, "mgmt": check_mgmt}
    return checks[study](root, config, split)


# ---- at DAG build: cached -----------------------------------------------------------------------
def fingerprint(
    study: str, root: Path, config: Mapping[str, Any], layout: str | None, split: bool
) -> str:
    """SHA-256 of what a check's verdict depends on: every file's path, size and modification
    time under ``root``, the study's check settings, the seed and the DICOM settings."""
    from voxflow import __version__

    h = hashlib.sha256()
    settings = {k: config[study].get(k) for k in CHECK_KEYS[study]}
    extra = {"seed": config["seed"], "dicom": config.get("dicom"), "layout": layout}
    meta = [CHECK_VERSION, __version__, study, str(root.resolve()), settings, extra, split]
    h.update(json.dumps(meta, sort_keys=True, default=str).encode())
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError as err:  # a broken link: the check reports it
                h.update(f"{path}\0{err}\n".encode())
                continue
            h.update(f"{os.path.relpath(path, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def check_cached(
    study: str,
    root: str | Path,
    config: Mapping[str, Any],
    cache_dir: str | Path,
    layout: str | None = None,
    split: bool = True,
) -> Report | None:
    """:func:`check_cohort`, skipped (None) when an identical cohort passed before; a passed
    check leaves a stamp in ``cache_dir``, a failed one leaves nothing."""
    from voxflow.io.atomic import write_json

    root = Path(root)
    stamp = Path(cache_dir) / f"{study}-{fingerprint(study, root, config, layout, split)}.json"
    if stamp.is_file():
        return None
    report = check_cohort(study, root, config, layout, split)
    if report.ok:
        write_json(stamp, {"study": study, "root": str(root), "subjects": report.subjects})
    return report
