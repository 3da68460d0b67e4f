"""Post-arrest CT + MR cohort layout of the ``gwr`` study (../shared/specs/gwr.md).

``<root>/<patient>/ct/`` (a DICOM series), ``<root>/<patient>/mr.nii.gz`` (the earlier MR),
``<root>/<patient>/mr_labels.nii.gz`` (landmarks on the MR; values mapped by ``gwr.labels``) and an
optional ``<root>/outcomes.csv`` (``patient,poor_outcome``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voxflow.errors import input_error

FILES = ("ct", "mr.nii.gz", "mr_labels.nii.gz")


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


def read_cohort(root: str | Path) -> list[GWRCase]:
    """Every patient folder under ``root``; a folder lacking one of the files is an error."""
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
            raise input_error(
                folder, f"missing {', '.join(missing)}", f"Each patient needs {', '.join(FILES)}"
            )
        cases.append(GWRCase(folder.name, folder))
    return cases
