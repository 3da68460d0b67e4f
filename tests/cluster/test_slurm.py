"""profiles/slurm against a real single-node SLURM (slurmctld + slurmd + munge on loopback).

The daemons come from tests/cluster/start_slurm.sh (installed from Debian's packages when
missing; needs root and apt) and are stopped by PID at the end. The tiny qq config runs locally
and, at the same time, through ``snakemake --profile profiles/slurm`` (as is, but polling
squeue every 2 s instead of 10 s), whose first training job is killed with scancel: Snakemake
reports it failed, resubmits it (the profile's ``retries: 1``) and ends with the same outputs
as the local run; training and inference ran as GPU jobs (the node has one fake GPU), the rest
as CPU jobs (per-subject group jobs) or locally. Then, with ``--retries 0``, a killed training
fails the run and a rerun completes it.

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
from workflow_copy import SNAKEMAKE, TINY_QQ, make_workdir

HERE = Path(__file__).resolve().parent
# The tests poll squeue every 2 s (profiles/slurm: 10 s); slurmctld keeps finished jobs 300 s.
FAST = ["--slurm-init-seconds-before-status-checks", "2"]
# the smallest qq DAG with CPU rules (phantom, crop, split, fit, table) and GPU rules (train,
# evaluate): 4 subjects (2 train, 1 val, 1 test), one network
CONFIG = {
    **TINY_QQ,
    "train_threads": 1,  # the same torch threads in both runs (bit-identical weights)
    "qq": {
        **TINY_QQ["qq"],
        "phantom": {**TINY_QQ["qq"]["phantom"], "subjects": 4},
        "split": {"test": 1, "val": 1},
        "models": ["resnet3d"],
        "train": {**TINY_QQ["qq"]["train"], "epochs": 3},
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


def _run(wd: Path, cmd: list[str], ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=600)
    if ok and proc.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


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
    """The local run and, at the same time, the cluster run (the profile as is: --retries 1),
    whose first training job is killed with scancel."""
    local = make_workdir(tmp_path_factory.mktemp("local"), CONFIG)
    wd = make_workdir(tmp_path_factory.mktemp("cluster"), CONFIG)
    # concurrently: the cluster run mostly waits for its status polls
    local_cmd = [SNAKEMAKE, "--cores", "1"]
    local_run = subprocess.Popen(
        local_cmd, cwd=local, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    before = set(_jobs())
    killed, proc = _run_and_kill_training(wd, _cluster_cmd())
    local_out, _ = local_run.communicate(timeout=600)
    assert local_run.returncode == 0, local_out[-6000:]
    jobs = {j: c for j, c in _jobs().items() if j not in before}
    return local, wd, jobs, killed, proc


@pytest.mark.slow
def test_killed_job_is_reported_failed_and_resubmitted(cluster_run):
    _, _, _, killed, proc = cluster_run
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert f"SLURM-job '{killed}' failed" in proc.stdout and "CANCELLED" in proc.stdout
    assert "Trying to restart job" in proc.stdout  # profiles/slurm: retries 1


@pytest.mark.slow
def test_cluster_run_matches_local_run(cluster_run):
    local, wd, _, _, _ = cluster_run
    pd.testing.assert_frame_equal(_table(local), _table(wd))
    for f in ["results/qq/split.tsv", "results/qq/oef_rmse.tsv"]:
        assert (local / f).read_bytes() == (wd / f).read_bytes(), f
    for m in CONFIG["qq"]["models"]:
        p = f"results/qq/train/{m}/model.pt"
        assert _same_weights(local / p, wd / p), m


@pytest.mark.slow
def test_training_and_inference_are_gpu_jobs_the_rest_cpu_jobs(cluster_run):
    _, _, jobs, _, _ = cluster_run
    rules = {j: c.split("_wildcards")[0].removeprefix("rule_") for j, c in jobs.items()}
    # a group job's comment: its group, then its rules ("subject_brain_phantom_qq_crop_...")
    rules = {j: "subject" if r.startswith("subject_") else r for j, r in rules.items()}
    assert list(rules.values()).count("subject") == 1, rules  # 4 subjects, group-components 10
    # per-subject chains run as group jobs (profiles/slurm: groups), splits and tables locally
    assert {"subject", "qq_normalisation", "qq_train", "qq_evaluate", "qq_fit"} <= set(
        rules.values()
    ), rules
    assert not {"qq_split", "qq_table", "brain_template"} & set(rules.values()), rules
    for job, rule in rules.items():
        assert _gpus(job) == (rule in ("qq_train", "qq_evaluate")), (job, rule)


@pytest.mark.slow
def test_without_retries_a_killed_job_fails_the_run_and_a_rerun_completes(cluster_run):
    local, wd, _, _, _ = cluster_run
    for ckpt in wd.glob("results/qq/train/*/checkpoint_*.pt"):
        ckpt.unlink()  # else training resumes at its last epoch and ends at once
    killed, proc = _run_and_kill_training(wd, _cluster_cmd("-R", "qq_train", "--retries", "0"))
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert f"SLURM-job '{killed}' failed" in proc.stdout and "CANCELLED" in proc.stdout
    assert "Trying to restart job" not in proc.stdout
    _run(wd, _cluster_cmd())  # resumes the training from its last checkpoint, if any
    pd.testing.assert_frame_equal(_table(local), _table(wd))
    assert "Nothing to be done" in _run(wd, _cluster_cmd("-n")).stdout
