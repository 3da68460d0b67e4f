"""ruff, ruff format and snakefmt are clean (snakemake --lint runs in test_dag.py)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# the tracked Python sources, named so that nothing a demo run left in the checkout is checked
SOURCES = ["src", "tests", "workflow", "benchmarks", "requirements"]


@pytest.mark.parametrize(
    "cmd",
    [
        ["ruff", "check", *SOURCES],
        ["ruff", "format", "--check", *SOURCES],
        ["snakefmt", "--check", "Snakefile", "workflow"],
    ],
    ids=["ruff", "ruff-format", "snakefmt"],
)
def test_clean(cmd):
    proc = subprocess.run([str(BIN / cmd[0]), *cmd[1:]], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
