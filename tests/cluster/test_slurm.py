"""profiles/slurm against a real single-node SLURM (slurmctld + slurmd + munge on loopback).

The daemons come from tests/cluster/start_slurm.sh (installed from Debian's packages when
missing; needs root and apt) and are stopped by PID at the end. The tiny qq config runs locally
(its phantom cohort first) and, at the same time, through ``snakemake --profile
profiles/slurm`` on that cohort (the profile as is, but polling squeue from 2 s on instead of
10 s). The first cluster run, with ``--retries 0``, has its training job killed with scancel:
Snakemake reports it failed and the run fails. The rerun (the profile's ``retries: 1``) has its
training job killed as well: Snakemake reports it, resubmits it and completes, with the same
outputs as the local run. Training and inference ran as GPU jobs (the node has one fake GPU),
the rest as CPU jobs, splits and tables locally.

CI runs it as its own step (``.ci/run slurm``, which sets VOXFLOW_SLURM_TEST=1); there a SLURM
that cannot be started is a failure. Without VOXFLOW_SLURM_TEST=1 it is skipped, as it is where
no SLURM can be started: not root, no apt-get, or an /etc/slurm/slurm.conf of another cluster.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from workflow_copy import SNAKEMAKE, TINY_QQ, _snakemake, make_workdir, run_command

HERE = Path(__file__).resolve().parent
# The tests poll squeue from 2 s on (profiles/slurm: 10 s); slurmctld keeps finished jobs 300 s.
FAST = ["--slurm-init-seconds-before-status-checks", "2"]
# the smallest qq DAG with CPU rules (crop, normalisation, fit; split and table run locally) and
# GPU rules (train, evaluate): 4 subjects (2 train, 1 val, 1 test), one network
CONFIG = {
    **TINY_QQ,
    "train_threads": 1,  # the same torch threads in both runs (bit-identical weights)
    "qq": {
        **TINY_QQ["qq"],
        "phantom": {**TINY_QQ["qq"]["phantom"], "subjects": 4},
        "split": {"test": 1, "val": 1},
        "models": ["resnet3d"],
    },
}


def _why_not() -> str | None:
    """Why no SLURM can be started here, or None."""
    conf = Path("/etc/slurm/slurm.conf")
    if conf.is_file() and "written by voxflow" not in conf.read_text(errors="replace"):
        return f"{conf} belongs to another SLURM"
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None if os.geteuid() == 0 else "starting slurmctld/munged needs root"
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "SLURM is not installed and cannot be (needs root and apt-get)"
    return None


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if os.environ.get("VOXFLOW_SLURM_TEST") != "1":
        pytest.skip("set VOXFLOW_SLURM_TEST=1 (.ci/run slurm): installs and starts SLURM as root")
    why = _why_not()
    if why:
        pytest.fail(f"VOXFLOW_SLURM_TEST=1 but no SLURM can be started: {why}")
    state = tmp_path_factory.mktemp("slurm-state")
    proc = subprocess.run(
        ["bash", str(HERE / "start_slurm.sh"), str(state)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    try:
        assert proc.returncode == 0, f"start_slurm.sh failed:\n{proc.stdout}\n{proc.stderr}"
        yield proc.stdout.strip()
    finally:
        subprocess.run(["bash", str(HERE / "stop_slurm.sh"), str(state)], timeout=60)
        assert not (state / "pids").exists()


def _jobs() -> dict[str, str]:
    """Job id -> comment (``rule_<name>...``) of every job slurmctld still knows."""
    out = subprocess.run(
        ["squeue", "-t", "all", "-h", "-o", "%i|%k"], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split("|", 1) for line in out.split())


def _gpus(job_id: str) -> bool:
    out = subprocess.run(
        ["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True
    ).stdout
    return "gres:gpu:1" in out or "gres/gpu=1" in out


def _cluster_cmd(*args: str) -> list[str]:
    return [SNAKEMAKE, "--profile", "profiles/slurm", *FAST, *args]


def _table(wd: Path) -> pd.DataFrame:
    return pd.read_csv(wd / "results/qq/rmse.tsv", sep="\t").drop(columns="seconds")


def _same_weights(a: Path, b: Path) -> bool:
    x, y = (torch.load(p, weights_only=True) for p in (a, b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def _kill_first_training(proc: subprocess.Popen, deadline_s: float = 180) -> str:
    """scancel the first qq_train job seen RUNNING; its id."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < deadline_s and proc.poll() is None:
        out = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%i|%k"], capture_output=True, text=True
        ).stdout
        for line in out.split():
            job, comment = line.split("|", 1)
            if comment.startswith("rule_qq_train"):
                subprocess.run(["scancel", job], check=True)
                return job
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no qq_train job was seen running")


def _run_and_kill_training(wd: Path, cmd: list[str]) -> tuple[str, subprocess.CompletedProcess]:
    """Run ``cmd`` in ``wd``, scancel its first training job; (that job's id, the run)."""
    proc = subprocess.Popen(
        cmd, cwd=wd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    killed = _kill_first_training(proc)
    out, _ = proc.communicate(timeout=600)
    return killed, subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@pytest.fixture(scope="module")
def cluster_run(slurm, tmp_path_factory):
    """The local run and, at the same time, two cluster runs on the cohort the local run
    generated (as a user's cluster run reads their dataset): the first with ``--retries 0``,
    the second the profile as is (``retries: 1``); each has its first training job killed."""
    local = make_workdir(tmp_path_factory.mktemp("local"), CONFIG)
    _snakemake(local, "--until", "qq_phantom")
    cohort = {"layout": "qq", "root": str(local / "resources/qq/phantom")}
    wd = make_workdir(
        tmp_path_factory.mktemp("cluster"), {**CONFIG, "qq": {**CONFIG["qq"], "cohort": cohort}}
    )
    # concurrently: the cluster runs mostly wait for their status polls
    local_run = subprocess.Popen(
        [SNAKEMAKE, "--cores", "1"],
        cwd=local,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    before = set(_jobs())
    first = _run_and_kill_training(wd, _cluster_cmd("--retries", "0"))
    table_after_first = (wd / "results/qq/rmse.tsv").exists()
    rerun = _run_and_kill_training(wd, _cluster_cmd())
    local_out, _ = local_run.communicate(timeout=600)
    assert local_run.returncode == 0, local_out[-6000:]
    jobs = {j: c for j, c in _jobs().items() if j not in before}
    return {
        "local": local,
        "wd": wd,
        "jobs": jobs,
        "first": first,
        "table_after_first": table_after_first,
        "rerun": rerun,
    }


@pytest.mark.slow
def test_without_retries_a_killed_job_fails_the_run(cluster_run):
    killed, proc = cluster_run["first"]
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert f"SLURM-job '{killed}' failed" in proc.stdout and "CANCELLED" in proc.stdout
    assert "Trying to restart job" not in proc.stdout
    assert not cluster_run["table_after_first"]


@pytest.mark.slow
def test_the_rerun_resubmits_a_killed_job_and_completes(cluster_run):
    killed, proc = cluster_run["rerun"]
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert f"SLURM-job '{killed}' failed" in proc.stdout and "CANCELLED" in proc.stdout
    assert "Trying to restart job" in proc.stdout  # profiles/slurm: retries 1
    assert "Nothing to be done" in run_command(_cluster_cmd("-n"), cluster_run["wd"]).stdout


@pytest.mark.slow
def test_cluster_run_matches_local_run(cluster_run):
    local, wd = cluster_run["local"], cluster_run["wd"]
    pd.testing.assert_frame_equal(_table(local), _table(wd))
    for f in ["results/qq/split.tsv", "results/qq/oef_rmse.tsv"]:
        assert (local / f).read_bytes() == (wd / f).read_bytes(), f
    for m in CONFIG["qq"]["models"]:
        p = f"results/qq/train/{m}/model.pt"
        assert _same_weights(local / p, wd / p), m


@pytest.mark.slow
def test_training_and_inference_are_gpu_jobs_the_rest_cpu_jobs(cluster_run):
    jobs = cluster_run["jobs"]
    rules = {j: c.split("_wildcards")[0].removeprefix("rule_") for j, c in jobs.items()}
    expected = {"qq_crop", "qq_normalisation", "qq_train", "qq_evaluate", "qq_fit"}
    # + the brain phantom behind the demo's brain QC figure; splits and tables: local rules
    assert set(rules.values()) == expected | {"brain_phantom"}, rules
    for job, rule in rules.items():
        assert _gpus(job) == (rule in ("qq_train", "qq_evaluate")), (job, rule)
