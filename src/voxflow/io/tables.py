"""TSV tables: always a header, tab-separated, stable float formatting, atomic."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from voxflow.errors import input_error
from voxflow.io.atomic import write_text_atomic


def write_tsv(df: pd.DataFrame, path: str | Path, float_format: str = "%.6g") -> Path:
    """Write ``df`` as a TSV with a header and no index, atomically."""
    return write_text_atomic(path, df.to_csv(sep="\t", index=False, float_format=float_format))


def read_tsv(path: str | Path, required: list[str] | None = None) -> pd.DataFrame:
    """Read a TSV; raise a clear error if it is missing or lacks ``required`` columns."""
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "table not found", "Check the path in the config")
    df = pd.read_csv(path, sep="\t")
    missing = [c for c in (required or []) if c not in df.columns]
    if missing:
        raise input_error(path, f"missing column(s) {missing}; has {list(df.columns)}")
    return df
