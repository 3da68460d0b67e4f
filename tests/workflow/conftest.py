"""Run the real Snakemake workflow on a tiny config in a temporary copy of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_copy import _snakemake, make_workdir

__all__ = ["make_workdir"]


@pytest.fixture(scope="session")
def snakemake():
    """``snakemake(workdir, *args, check=True)`` runs the real CLI and returns the process."""
    return _snakemake


@pytest.fixture
def workdir(tmp_path) -> Path:
    return make_workdir(tmp_path / "wf")


@pytest.fixture(scope="module")
def repo_workdir(tmp_path_factory) -> Path:
    """A copy of the workflow with the repository's own (demo) config, nothing built."""
    return make_workdir(tmp_path_factory.mktemp("wf-repo"), repo_config=True)


@pytest.fixture(scope="module")
def finished_workdir(tmp_path_factory) -> Path:
    """A workdir in which the whole default target has been built once."""
    wd = make_workdir(tmp_path_factory.mktemp("wf-done"))
    _snakemake(wd)
    return wd
