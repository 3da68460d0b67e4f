"""The card's command, the forms that replace it, and the `gpu` resource on CPU, GPU and SLURM."""

from __future__ import annotations

import re

import pytest
from workflow_copy import SNAKEMAKE, rule_bodies, run_command

from voxflow.gpus import visible_cuda_gpus
from voxflow.snakemake_argv import pth_path

CARD = ["--cores", "8", "--resources", "gpu=1", "results/ms/dsc.tsv"]  # as the design card
TARGET_FIRST = ["results/ms/dsc.tsv", "--cores", "8", "--resources", "gpu=1"]
PROFILE_ONLY = ["--cores", "8", "results/ms/dsc.tsv"]  # no --resources at all
GPU_RULES = {"ms_train", "ms_evaluate", "qq_train", "qq_evaluate"}


def planned_jobs(text: str) -> list[tuple[str, str, str, str]]:
    """(rule, wildcards, output, resources) of every job of a dry run, sorted."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text)[1:]:
        rule = re.match(r"(?:local)?rule (\w+):", block).group(1)
        field = {k: v for k, v in re.findall(r"^    (\w+): (.*)$", block, re.M)}
        norm = {k: ", ".join(sorted(v.split(", "))) for k, v in field.items()}  # order varies
        jobs.append((rule, norm.get("wildcards", ""), norm["output"], norm["resources"]))
    return sorted(jobs)


def dry_run(workdir, *args: str) -> list[tuple[str, str, str, str]]:
    proc = run_command([SNAKEMAKE, *args, "-n"], workdir)
    return planned_jobs(proc.stdout + proc.stderr)


def gpu_of(jobs, rules=GPU_RULES) -> set[str]:
    """The `gpu` values ('-': none declared) of the jobs of ``rules``."""
    found = {rule: re.search(r"gpu=(\d+)", res) for rule, _, _, res in jobs if rule in rules}
    return {m.group(1) if m else "-" for m in found.values()}


def test_the_three_forms_plan_the_same_jobs(repo_workdir):
    if not pth_path().exists():
        pytest.skip("the card's form needs the target-order hook that run.sh installs")
    card = dry_run(repo_workdir, *CARD)
    assert len(card) > 40 and {j[0] for j in card} >= {"ms_train", "ms_evaluate", "ms_table"}
    assert dry_run(repo_workdir, *TARGET_FIRST) == card
    assert dry_run(repo_workdir, *PROFILE_ONLY) == card


def test_plain_snakemake_reads_the_card_form_as_a_resource(repo_workdir):
    keep = {"VOXFLOW_KEEP_ARGV": "1"}
    proc = run_command([SNAKEMAKE, *CARD, "-n"], repo_workdir, check=False, env_extra=keep)
    assert proc.returncode != 0
    assert "dictionary update sequence" in proc.stderr  # what the hook saves users from


def test_gpu_resource_follows_where_the_jobs_run(repo_workdir):
    local = "1" if visible_cuda_gpus() else "0"
    assert gpu_of(dry_run(repo_workdir, *TARGET_FIRST)) == {local}
    # a GPU box (or device: cuda): every training/inference job holds the GPU
    assert gpu_of(dry_run(repo_workdir, *TARGET_FIRST, "--config", "device=cuda")) == {"1"}
    assert gpu_of(dry_run(repo_workdir, *TARGET_FIRST, "--config", "device=cpu")) == {"0"}
    # SLURM: submitted with a GPU whatever the submitting host has
    slurm = dry_run(repo_workdir, "results/ms/dsc.tsv", "--profile", "profiles/slurm")
    assert gpu_of(slurm) == {"1"}
    assert gpu_of(slurm, {"ms_phantom", "ms_preprocess", "brain_phantom"}) == {"-"}


def test_slurm_profile_gives_every_gpu_rule_a_gpu(repo):
    import yaml

    gpu_rules = {name for name, _, body in rule_bodies(repo) if "gpu=GPU_PER_JOB" in body}
    assert gpu_rules >= GPU_RULES
    profile = yaml.safe_load((repo / "profiles/slurm/config.yaml").read_text())
    assert {r for r, res in profile["set-resources"].items() if res.get("gpu") == 1} == gpu_rules
    assert profile["resources"]["gpu"] >= 100
