"""Faults: ``kill -9`` of a whole Snakemake run mid-training, then the same command again."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from workflow_copy import SNAKEMAKE, TINY_QQ, _snakemake, make_workdir

# qq: the cheapest study with training jobs (about a minute on 2 cores); a few more epochs
# than TINY_QQ's 2, so that the kill lands between two epochs of a training
CONFIG = {**TINY_QQ, "qq": {**TINY_QQ["qq"], "train": {**TINY_QQ["qq"]["train"], "epochs": 6}}}
# wall-clock columns: the only content two uninterrupted runs differ in
TIMING_COLUMNS = {"seconds", "samples_per_s"}
COMMAND = [SNAKEMAKE, "--cores", "2"]


def outputs(workdir: Path) -> dict[str, str]:
    """Digest of every file under results/ and resources/ (TSVs without timing columns),
    by relative path; training checkpoints (which hold timings) and hidden files (the
    temporaries of an atomic write that a kill cut short) are left out."""
    digests = {}
    for path in sorted([*workdir.glob("results/**/*"), *workdir.glob("resources/**/*")]):
        rel = path.relative_to(workdir)
        if not path.is_file() or path.name.startswith("checkpoint_"):
            continue
        if any(part.startswith(".") for part in rel.parts):
            continue
        data = path.read_bytes()
        if path.suffix == ".tsv":
            rows = list(csv.reader(io.StringIO(data.decode()), delimiter="\t"))
            keep = [i for i, name in enumerate(rows[0]) if name not in TIMING_COLUMNS]
            data = "\n".join("\t".join(row[i] for i in keep) for row in rows).encode()
        digests[str(rel)] = hashlib.sha256(data).hexdigest()
    return digests


def wait_for(what: str, found, proc: subprocess.Popen, timeout: float = 300.0):
    """Poll ``found()`` until it returns something truthy; fail if the run ends first."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        result = found()
        if result:
            return result
        if proc.poll() is not None:
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}")
        time.sleep(0.02)
    pytest.fail(f"no {what} within {timeout:.0f} s")


def group_gone(pgid: int, timeout: float = 30.0) -> bool:
    """Wait until no process of group ``pgid`` is left (killed jobs are reaped by init)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


@pytest.mark.slow
def test_kill_9_of_the_whole_run_mid_training_then_rerun_gives_identical_tables(tmp_path):
    ref = make_workdir(tmp_path / "uninterrupted", CONFIG)
    _snakemake(ref)
    expected = outputs(ref)
    assert any(p.endswith("rmse.tsv") for p in expected) and len(expected) > 50

    wd = make_workdir(tmp_path / "killed", CONFIG)
    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(
            COMMAND, cwd=wd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        # a second live run in the same folder is still refused, and leaves the first's lock
        wait_for("Snakemake's lock", lambda: list(wd.glob(".snakemake/locks/*.lock")), proc)
        second = _snakemake(wd, check=False)
        assert second.returncode != 0
        assert "Directory cannot be locked" in second.stdout + second.stderr
        assert proc.poll() is None and list(wd.glob(".snakemake/locks/*.lock"))

        def training_mid_way():
            return [
                ck.parent
                for ck in wd.glob("results/qq/train/*/checkpoint_last.pt")
                if not (ck.parent / "model.pt").exists()
            ]

        training = wait_for("a training's first checkpoint", training_mid_way, proc)
        os.killpg(proc.pid, signal.SIGKILL)  # snakemake and its running jobs
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert group_gone(proc.pid)
    assert not any((d / "model.pt").exists() for d in training), "the kill came too late"
    assert list(wd.glob(".snakemake/locks/*.lock")), "the kill left no lock to test"

    _snakemake(wd)  # the same command again: no --unlock, no --rerun-incomplete typed
    for d in training:
        log = (wd / "logs/qq/qq_train" / f"{d.name}.log").read_text()
        assert f"resuming from results/qq/train/{d.name}/checkpoint_last.pt" in log, log
    got = outputs(wd)
    assert sorted(got) == sorted(expected)
    assert [p for p in expected if got[p] != expected[p]] == []
    assert "Nothing to be done" in _snakemake(wd, "-n").stdout
