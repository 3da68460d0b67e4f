"""Post-arrest CT + MR cohort layout of the ``gwr`` study (../shared/specs/gwr.md).

``<root>/<patient>/ct/`` (a DICOM series), ``<root>/<patient>/mr.nii.gz`` (the earlier MR),
``<root>/<patient>/mr_labels.nii.gz`` (landmarks on the MR; values mapped by ``gwr.labels``) and an
optional ``<root>/outcomes.csv`` (``patient,poor_outcome``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voxflow.errors import collecting, input_error, raise_or_collect
from voxflow.io.layouts import read_csv_rows

FILES = ("ct", "mr.nii.gz", "mr_labels.nii.gz")
OUTCOME_COLUMNS = ("patient", "poor_outcome")


@dataclass(frozen=True)
class GWRCase:
    """One patient's inputs."""

    patient: str
    folder: Path

    @property
    def ct(self) -> Path:
        return self.folder / "ct"

    @property
    def mr(self) -> Path:
        return self.folder / "mr.nii.gz"

    @property
    def mr_labels(self) -> Path:
        return self.folder / "mr_labels.nii.gz"


def read_cohort(root: str | Path, problems: list[str] | None = None) -> list[GWRCase]:
    """Every patient folder under ``root``; a folder lacking one of the files is an error
    (collected in ``problems`` when given, and the patient is kept)."""
    root = Path(root)
    if not root.is_dir():
        raise input_error(root, "gwr cohort root not found", "Set gwr.cohort.root")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise input_error(root, "no patient folders", "Expected <root>/<patient>/ct/ ...")
    cases = []
    for folder in folders:
        missing = [f for f in FILES if not (folder / f).exists()]
        if missing:
            err = input_error(
                folder, f"missing {', '.join(missing)}", f"Each patient needs {', '.join(FILES)}"
            )
            raise_or_collect(err, problems)
        cases.append(GWRCase(folder.name, folder))
    return cases


def read_outcome_rows(
    path: str | Path, patients: list[str] | None = None, problems: list[str] | None = None
) -> dict[str, int]:
    """``outcomes.csv`` as {patient: poor_outcome}. A row naming no patient of ``patients``, a
    repeated patient or a value other than 0/1 is an error naming the line (with ``problems``:
    collected there and the row left out)."""
    path = Path(path)
    known = set(patients) if patients is not None else None
    out: dict[str, int] = {}
    for line, r in read_csv_rows(path, OUTCOME_COLUMNS, "outcome table"):
        where = f"{path}:{line}"
        patient = (r["patient"] or "").strip()
        value = (r["poor_outcome"] or "").strip()
        with collecting(problems):
            if known is not None and patient not in known:
                raise input_error(where, f"unknown patient '{patient}' (no such folder)")
            if patient in out:
                raise input_error(where, f"patient '{patient}' listed twice")
            if value not in ("0", "1"):
                raise input_error(where, f"poor_outcome {value!r} is not 0 or 1")
            out[patient] = int(value)
    return out
