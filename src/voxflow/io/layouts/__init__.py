"""Readers of real datasets' on-disk layouts (the phantoms write the same layouts)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from voxflow.errors import input_error


def read_csv_rows(path: str | Path, columns: Sequence[str], what: str) -> list[tuple[int, dict]]:
    """``(line number, row)`` of a CSV label table that must exist and have ``columns``;
    ``what`` names the table in the errors."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise input_error(path, f"{what} not found", f"Expected columns {tuple(columns)}")
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise input_error(path, f"missing column(s) {missing}", f"Columns: {tuple(columns)}")
        return list(enumerate(reader, start=2))
