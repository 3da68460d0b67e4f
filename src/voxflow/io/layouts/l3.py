"""Whole-body CT cohort layout of the ``l3`` study (../shared/specs/l3.md).

``<root>/<patient>/`` holds the patient's DICOM files (other series such as a scout are allowed:
the DICOM stage picks the axial series with most slices). L3 labels come either from
``<root>/l3_labels.csv`` (``patient,l3_first,l3_last,index_order``: the first and last L3 slice
as 0-based indices of the axial series sorted ``feet_to_head`` or ``head_to_feet``), or from a
vertebra mask per patient (``<root>/<patient>/<mask_name>``, on the CT grid) whose L3 value is
configured (TotalSegmentator numbers L3 29). :func:`l3_slices` turns either into the set of L3
slices of the converted CT volume, whatever order its slices are stored in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import collecting, input_error, raise_or_collect
from voxflow.io.layouts import read_csv_rows

LABELS_CSV = "l3_labels.csv"
CSV_COLUMNS = ("patient", "l3_first", "l3_last", "index_order")
INDEX_ORDERS = ("feet_to_head", "head_to_feet")


@dataclass(frozen=True)
class L3Label:
    """One CSV row: the L3 slice range in the stated index order (``row`` = line in the file)."""

    patient: str
    first: int
    last: int
    index_order: str
    row: int
    path: Path


def read_patients(root: str | Path) -> list[str]:
    """Patient folders under ``root`` (sorted); an empty or missing root is an error."""
    root = Path(root)
    if not root.is_dir():
        raise input_error(root, "l3 cohort root not found", "Set l3.cohort.root")
    patients = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not patients:
        raise input_error(root, "no patient folders", "Expected <root>/<patient>/*.dcm")
    return patients


def read_labels(
    path: str | Path, patients: list[str] | None = None, problems: list[str] | None = None
) -> dict[str, L3Label]:
    """Rows of ``l3_labels.csv`` by patient. A row with an unknown patient, a non-integer or
    negative index, ``l3_last < l3_first``, an unknown ``index_order`` or a repeated patient is
    an error naming the file and line; so is a patient of ``patients`` without a row. With
    ``problems``, every such error is collected there and the bad rows are left out."""
    path = Path(path)
    rows = read_csv_rows(path, CSV_COLUMNS, "L3 label table")
    known = set(patients) if patients is not None else None
    out: dict[str, L3Label] = {}
    for line, r in rows:
        with collecting(problems):
            label = _label_row(path, line, r, known, out)
            out[label.patient] = label
    if known is not None:
        lacking = sorted(known - set(out) - _rows_named(rows))
        if lacking:
            err = input_error(path, f"no row for patient(s) {lacking}", "Add their L3 slices")
            raise_or_collect(err, problems)
    return out


def _rows_named(rows: list[tuple[int, dict]]) -> set[str]:
    return {(r["patient"] or "").strip() for _, r in rows}


def _label_row(
    path: Path, line: int, r: dict, known: set[str] | None, seen: dict[str, L3Label]
) -> L3Label:
    """One checked CSV row (``seen``: the rows read before it)."""
    where = f"{path}:{line}"
    patient = (r["patient"] or "").strip()
    if known is not None and patient not in known:
        raise input_error(where, f"unknown patient '{patient}' (no such folder)")
    if patient in seen:
        raise input_error(where, f"patient '{patient}' listed twice")
    try:
        first, last = int(r["l3_first"]), int(r["l3_last"])
    except (TypeError, ValueError):
        raise input_error(
            where, f"l3_first/l3_last must be integers, got {r['l3_first']!r}, {r['l3_last']!r}"
        ) from None
    if first < 0:
        raise input_error(where, f"l3_first {first} is negative")
    if last < first:
        raise input_error(where, f"l3_last {last} < l3_first {first}")
    order = (r["index_order"] or "").strip()
    if order not in INDEX_ORDERS:
        raise input_error(where, f"index_order '{order}' not one of {INDEX_ORDERS}")
    return L3Label(patient, first, last, order, line, path)


def slice_heights(affine: np.ndarray, n_slices: int) -> np.ndarray:
    """Head-ward position (RAS z, mm) of each slice k of a volume with ``affine``."""
    k = np.arange(n_slices)
    return affine[2, 2] * k + affine[2, 3]


def feet_to_head_order(affine: np.ndarray, n_slices: int) -> np.ndarray:
    """Volume slice indices k sorted feet -> head."""
    return np.argsort(slice_heights(affine, n_slices), kind="stable")


def l3_from_row(label: L3Label, affine: np.ndarray, n_slices: int) -> np.ndarray:
    """Boolean per volume slice: inside the row's L3 range (converted from its index order).
    An index beyond the series is an error naming the row."""
    if label.last >= n_slices:
        raise input_error(
            f"{label.path}:{label.row}",
            f"l3_last {label.last} is out of range: patient '{label.patient}' has "
            f"{n_slices} slices (0..{n_slices - 1})",
        )
    order = feet_to_head_order(affine, n_slices)
    if label.index_order == "head_to_feet":
        order = order[::-1]
    out = np.zeros(n_slices, bool)
    out[order[label.first : label.last + 1]] = True
    return out


def l3_from_mask(mask: np.ndarray, l3_value: int, path: str | Path) -> np.ndarray:
    """Boolean per volume slice (last axis): the slice holds voxels of vertebra ``l3_value``."""
    if mask.ndim != 3:
        raise input_error(path, f"vertebra mask must be 3D, got shape {mask.shape}")
    out = (mask == l3_value).any(axis=(0, 1))
    if not out.any():
        raise input_error(path, f"no voxel labelled {l3_value} (L3)", "Check l3.labels.l3_value")
    return out
