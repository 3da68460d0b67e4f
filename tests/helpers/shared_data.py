"""Paths of the real public test data in ../shared/data and a marker for tests that need it.

Such tests skip on a developer machine without the folder, but fail under CI (``CI`` set),
where the data must be present.
"""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
DICOM = SHARED_DATA / "dicom"
OPEN_MS = SHARED_DATA / "ms" / "open_ms_data"


def needs(path: Path):
    """Skip unless ``path`` exists (never under CI, where its absence is a failure)."""
    return pytest.mark.skipif(
        not path.is_dir() and not os.environ.get("CI"), reason=f"{path} not present"
    )
