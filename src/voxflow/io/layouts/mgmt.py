"""Kaggle RSNA-MICCAI Brain Tumor Radiogenomic (2021) layout of the ``mgmt`` study.

``<root>/train/<BraTS21ID>/{FLAIR,T1w,T1wCE,T2w}/Image-<n>.dcm`` and ``<root>/train_labels.csv``
(``BraTS21ID,MGMT_value``). Ids are 5-digit folder names; the CSV may write them without zero
padding (Kaggle's file does), so both are normalised to 5 digits. Excluded ids (the competition's
00109, 00123, 00709) are skipped before any check. Every problem is one error naming the file
(and line) or the patient and series.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from voxflow.errors import VoxflowError, collecting, input_error, raise_or_collect
from voxflow.io.layouts import read_csv_rows

SERIES = ("FLAIR", "T1w", "T1wCE", "T2w")
LABELS_CSV = "train_labels.csv"
CSV_COLUMNS = ("BraTS21ID", "MGMT_value")


def normalise_id(raw: str, where: str | Path) -> str:
    """``'109'`` or ``'00109'`` -> ``'00109'``; anything but 1-5 digits is an error."""
    text = str(raw).strip()
    if not text.isdigit() or len(text) > 5:
        raise input_error(where, f"BraTS21ID {raw!r} is not a number of at most 5 digits")
    return text.zfill(5)


def read_labels(root: str | Path, problems: list[str] | None = None) -> dict[str, int]:
    """``train_labels.csv`` as {5-digit id: 0/1}; a repeated id or a value other than 0/1 is
    an error naming the line (with ``problems``: collected there, the row left out)."""
    path = Path(root) / LABELS_CSV
    rows = read_csv_rows(path, CSV_COLUMNS, "MGMT label table")
    out: dict[str, int] = {}
    for line, r in rows:
        where = f"{path}:{line}"
        with collecting(problems):
            pid = normalise_id(r["BraTS21ID"] or "", where)
            if pid in out:
                raise input_error(where, f"BraTS21ID {pid} listed twice")
            value = (r["MGMT_value"] or "").strip()
            if value not in ("0", "1"):
                raise input_error(where, f"MGMT_value {value!r} for {pid} is not 0 or 1")
            out[pid] = int(value)
    if not out:
        raise input_error(path, "no rows")
    return out


def series_folder(root: str | Path, pid: str, series: str) -> Path:
    """``<root>/train/<pid>/<series>``."""
    return Path(root) / "train" / pid / series


def read_patients(
    root: str | Path,
    exclude: Iterable[str] = (),
    series: Iterable[str] = SERIES,
    problems: list[str] | None = None,
) -> dict[str, int]:
    """{id: MGMT_value} of the usable patients (sorted by id): every patient folder has a label
    row and every series folder, every label row has a folder; ``exclude`` ids are left out.
    With ``problems``, every such error is collected there and the patient left out."""
    root = Path(root)
    train = root / "train"
    if not train.is_dir():
        raise input_error(train, "mgmt cohort folder not found", "Set mgmt.cohort.root")
    skip = {normalise_id(e, "mgmt.exclude") for e in exclude}
    labels = read_labels(root, problems)
    folders = {p.name for p in train.iterdir() if p.is_dir() and not p.name.startswith(".")}
    bad: list[VoxflowError] = []
    for name in sorted(folders - skip):
        if not (name.isdigit() and len(name) == 5):
            bad.append(input_error(train / name, "not a 5-digit BraTS21ID folder"))
        elif name not in labels:
            bad.append(input_error(train / name, f"patient {name} has no row in {LABELS_CSV}"))
    for pid in sorted(set(labels) - skip - folders):
        bad.append(input_error(root / LABELS_CSV, f"BraTS21ID {pid} has no folder under {train}"))
    for err in bad:
        raise_or_collect(err, problems)
    out = {}
    for pid in sorted((set(labels) & folders) - skip):
        lacking = [s for s in series if not series_folder(root, pid, s).is_dir()]
        for s in lacking:
            raise_or_collect(
                input_error(
                    train / pid, f"patient {pid}: series folder '{s}' missing", f"Expected {SERIES}"
                ),
                problems,
            )
        if not lacking:
            out[pid] = labels[pid]
    if not out:
        raise input_error(train, "no patients left after the exclusions")
    return out
