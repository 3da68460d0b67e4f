"""The qq study's DAG end to end on a tiny config (6 mm phantoms, a few epochs)."""

import json
import re

import pandas as pd
import pytest
import yaml
from workflow_copy import TINY_QQ, assert_phantom_passes_check

from voxflow.gpus import visible_cuda_gpus


def max_concurrent(log: str, rule: str) -> int:
    """Most jobs of ``rule`` running at once, from Snakemake's job start and finish lines."""
    running: set[str] = set()
    most = 0
    for m in re.finditer(
        rf"rule {rule}:\n(?:    .*\n)*?    jobid: (\d+)|Finished jobid: (\d+)", log
    ):
        if m.group(1):
            running.add(m.group(1))
            most = max(most, len(running))
        else:
            running.discard(m.group(2))
    return most


@pytest.mark.slow
def test_qq_dag_tables_figure_and_rerun(snakemake, workdir):
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump({**TINY_QQ, "train_threads": 1}))
    # the two trainings first, with --resources gpu=1: on a CPU-only machine the jobs hold no
    # GPU, so the two 1-thread trainings still run side by side on the 2 cores
    trained = [f"results/qq/train/{m}/model.pt" for m in ("resnet3d", "cnn3d")]
    proc = snakemake(workdir, *trained, "--resources", "gpu=1")
    assert max_concurrent(proc.stdout + proc.stderr, "qq_train") == (
        1 if visible_cuda_gpus() else 2
    )
    snakemake(workdir)
    assert_phantom_passes_check(workdir, "qq")
    table = pd.read_csv(workdir / "results/qq/rmse.tsv", sep="\t")
    assert list(table.columns) == [
        "model",
        "subject",
        "S0",
        "R2",
        "Y",
        "v",
        "chi_nb",
        "oef",
        "seconds",
    ]
    assert table.groupby("model").size().to_dict() == {
        "cnn3d": 3,
        "nlls": 3,
        "resnet3d": 3,
        "train_mean": 3,
    }
    assert (table.subject == "mean").sum() == 4
    assert (table[["S0", "R2", "Y", "v", "chi_nb", "oef"]] >= 0).all().all()
    oef = pd.read_csv(workdir / "results/qq/oef_rmse.tsv", sep="\t")
    assert list(oef.columns) == ["model", "oef_rmse"] and len(oef) == 4
    assert (workdir / "results/qq/oef_maps.png").stat().st_size > 1000
    split = pd.read_csv(workdir / "results/qq/split.tsv", sep="\t")
    assert split.split.value_counts().to_dict() == {"train": 2, "test": 2, "val": 1}
    norm = json.loads((workdir / "results/qq/normalisation.json").read_text())
    assert len(norm["inputs_mean"]) == 9 and len(norm["targets_mean"]) == 5
    te = json.loads((workdir / "resources/qq/phantom/sub-003/echo_times.json").read_text())
    assert len(te) == 8
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout


@pytest.mark.slow
def test_qq_wrong_echo_count_fails_naming_the_subject(snakemake, workdir, tmp_path):
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
    from voxflow.phantoms.qq import QQPhantomConfig, make_qq_subject, write_qq_subject

    root = tmp_path / "cohort"
    for i, n in enumerate([8, 8, 7, 8, 8], start=1):
        anat = make_brain(f"sub-00{i}", 1, BrainPhantomConfig(voxel_mm=6.0))
        write_qq_subject(make_qq_subject(anat, 1, QQPhantomConfig(n_echoes=n)), root, anat.subject)
    cfg = {**TINY_QQ, "qq": {**TINY_QQ["qq"], "cohort": {"layout": "qq", "root": str(root)}}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    proc = snakemake(workdir, "-n", check=False)
    assert proc.returncode != 0
    assert "sub-003 has 7 echoes but qq.n_echoes is 8" in proc.stdout + proc.stderr
    assert not (workdir / "results" / "qq").exists()
