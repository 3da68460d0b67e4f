"""Shared fixtures: small real phantom anatomy, repository paths."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def small_brain():
    """One brain phantom subject at 6 mm (about 0.1 s once the template is cached)."""
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain

    return make_brain("sub-001", 42, BrainPhantomConfig(voxel_mm=6.0))
