"""Run the real Snakemake workflow on a tiny config in a temporary copy of the repository."""

from __future__ import annotations

from pathlib import Path

import pytest
from privacy import report, workdir_leaks
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Issue 19: once a test that used ``workdir`` has passed, no file in it (outputs, logs,
    Snakemake's metadata) may carry an identifier of the DICOM files there (the phantoms'
    names, MRNs, birth dates...); a hit fails that test. Free for the slow DAG tests of the
    DICOM studies, which leave their outputs there anyway."""
    result = yield
    workdir = getattr(item, "funcargs", {}).get("workdir")
    if workdir is not None and (hits := workdir_leaks(workdir)):
        pytest.fail(f"DICOM identifiers in the outputs of {workdir}:\n{report(hits)}")
    return result
