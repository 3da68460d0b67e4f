"""voxflow.locks: Snakemake lock files of dead runs are removed, those of live runs are not."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from voxflow import locks

pytestmark = pytest.mark.skipif(locks.fcntl is None, reason="needs flock (POSIX)")

# a voxflow Snakemake process: claims the folder, says what it removed, then waits; with
# ORPHAN it first starts a child in its process group that outlives it (a job)
HOLDER = """
import subprocess, sys, time
from voxflow.locks import claim_workdir
if "ORPHAN" in sys.argv:
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(len(claim_workdir(sys.argv[1])), flush=True)
time.sleep(60)
"""


def start_holder(snakemake_dir: Path, *flags: str) -> subprocess.Popen:
    """A live claimant in its own process group; returns once it has claimed."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(snakemake_dir), *flags],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout.readline().strip().isdigit()
    return proc


def claim(snakemake_dir: Path) -> subprocess.CompletedProcess:
    """A second Snakemake process starting: claims, prints how many lock files it removed."""
    code = "import sys; from voxflow.locks import claim_workdir as c; print(len(c(sys.argv[1])))"
    return subprocess.run(
        [sys.executable, "-c", code, str(snakemake_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def kill(proc: subprocess.Popen, group: bool = True) -> None:
    (os.killpg if group else os.kill)(proc.pid, signal.SIGKILL)
    proc.wait()


def wait_group_gone(pgid: int) -> None:
    for _ in range(200):
        if not locks.group_alive(pgid):
            return
        time.sleep(0.05)
    raise AssertionError(f"process group {pgid} still alive")


def write_locks(snakemake_dir: Path) -> list[Path]:
    """Lock files as Snakemake writes them (persistence/file.py)."""
    (snakemake_dir / "locks").mkdir(parents=True, exist_ok=True)
    paths = [snakemake_dir / "locks" / f"0.{kind}.lock" for kind in ("input", "output")]
    for path in paths:
        path.write_text("results/a.tsv\n")
    return paths


def test_lock_of_a_live_run_stays_and_of_a_killed_one_goes(tmp_path):
    sm = tmp_path / ".snakemake"
    holder = start_holder(sm)
    try:
        held = write_locks(sm)
        assert claim(sm).stdout.strip() == "0"  # a second live run: Snakemake's check decides
        assert all(p.exists() for p in held)
        assert len(list((sm / "voxflow/owners").glob("*.json"))) == 1  # the holder's only
    finally:
        kill(holder)
    wait_group_gone(holder.pid)
    done = claim(sm)
    assert done.stdout.strip() == "2" and "removed the Snakemake lock" in done.stderr
    assert locks.lock_files(sm) == []
    assert list((sm / "voxflow/owners").glob("*")) == []  # dead records gone, own at exit


def test_lock_files_without_any_record_are_stale(tmp_path):
    sm = tmp_path / ".snakemake"
    write_locks(sm)  # e.g. a run killed before voxflow recorded owners
    (sm / "locks" / "notes.txt").write_text("not Snakemake's")
    assert claim(sm).stdout.strip() == "2"
    assert [p.name for p in (sm / "locks").iterdir()] == ["notes.txt"]


def test_orphaned_jobs_of_a_killed_snakemake_keep_its_lock(tmp_path):
    sm = tmp_path / ".snakemake"
    holder = start_holder(sm, "ORPHAN")
    try:
        held = write_locks(sm)
        kill(holder, group=False)  # only the snakemake process: its job runs on
        kept = claim(sm)
        assert kept.stdout.strip() == "0" and all(p.exists() for p in held)
        assert f"processes of its group {holder.pid} still run" in kept.stderr
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
    wait_group_gone(holder.pid)
    assert claim(sm).stdout.strip() == "2"


def test_a_run_on_another_host_keeps_its_lock_until_unlocked(tmp_path):
    sm = tmp_path / ".snakemake"
    owners = sm / "voxflow/owners"
    owners.mkdir(parents=True)
    other = locks.Owner("elsewhere.example", "b", 4242, 4242)
    (owners / other.record_name).write_text(json.dumps(asdict(other)))
    held = write_locks(sm)
    kept = claim(sm)
    assert kept.stdout.strip() == "0" and "host elsewhere.example" in kept.stderr
    assert all(p.exists() for p in held) and (owners / other.record_name).exists()
    for path in held:  # snakemake --unlock
        path.unlink()
    claim(sm)
    assert not (owners / other.record_name).exists()


def test_a_record_from_before_a_reboot_is_stale():
    me = locks.Owner.me()
    before = locks.Owner(me.host, "another-boot", os.getppid(), os.getpgrp())
    assert locks._blocker(before, me) is None
    assert locks._blocker(locks.Owner(me.host, me.boot_id, os.getppid(), 1), me)  # alive


def test_only_the_main_snakemake_process_claims(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = SimpleNamespace(exec_mode=SimpleNamespace(name="REMOTE"))
    write_locks(tmp_path / ".snakemake")
    assert locks.clear_stale_locks(job) == []
    assert not (tmp_path / ".snakemake/voxflow").exists()
