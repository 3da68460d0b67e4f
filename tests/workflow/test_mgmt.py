"""The mgmt study's DAG end to end on a tiny config (18 phantoms, 2 folds, both models)."""

import re
import shutil

import pandas as pd
import pytest
import yaml
from workflow_copy import TINY_MGMT, assert_phantom_passes_check

METRICS = ["accuracy", "precision", "recall", "f1", "auc"]


def write_config(workdir, **mgmt):
    cfg = {**TINY_MGMT, "mgmt": {**TINY_MGMT["mgmt"], **mgmt}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))


@pytest.mark.slow
def test_mgmt_dag_tables_rerun_and_determinism(snakemake, workdir):
    write_config(workdir)
    snakemake(workdir)
    assert_phantom_passes_check(workdir, "mgmt")
    res = workdir / "results/mgmt"
    folds = pd.read_csv(res / "folds.tsv", sep="\t")
    assert list(folds.columns) == ["model", "fold", *METRICS]
    assert sorted(zip(folds.model, folds.fold, strict=True)) == [
        ("2d", 0),
        ("2d", 1),
        ("3d", 0),
        ("3d", 1),
    ]
    summary = pd.read_csv(res / "summary.tsv", sep="\t")
    assert list(summary.columns) == ["model", "metric", "mean", "std"] and len(summary) == 10
    holdout = pd.read_csv(res / "holdout.tsv", sep="\t")
    assert list(holdout.model) == ["2d", "3d", "oracle"]
    assert list(holdout.columns) == ["model", *METRICS, "auc_low", "auc_high"]
    splits = pd.read_csv(res / "splits.tsv", sep="\t", dtype={"BraTS21ID": str})
    assert not {"00109", "00123"} & set(splits.BraTS21ID)  # excluded degenerate cases
    for model in ("2d", "3d"):
        for split in ("fold0", "fold1", "final"):
            assert (res / f"confusion/{model}_{split}.png").stat().st_size > 5000
        pred = pd.read_csv(res / f"pred/{model}/final.tsv", sep="\t", dtype={"BraTS21ID": str})
        assert set(pred.BraTS21ID) == set(splits.BraTS21ID[splits.role == "holdout"])
    assert (res / "roc.png").stat().st_size > 5000
    sidecars = list((res / "cases").glob("shard*/nifti/*/T1wCE.json"))
    assert len(sidecars) == len(splits)
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    # the bootstrap is not a training setting: only the tables are redone
    write_config(workdir, bootstrap=300)
    out = snakemake(workdir, "-n").stdout
    assert re.search(r"^mgmt_table\s+1$", out, re.M), out
    assert not re.search(r"^mgmt_(train|ingest|phantom)\s", out, re.M), out
    # a training setting retrains, but does not re-ingest
    write_config(workdir, train={"epochs": 2, "lr": 1.0e-3})
    out = snakemake(workdir, "-n").stdout
    assert re.search(r"^mgmt_train\s+6$", out, re.M), out
    assert not re.search(r"^mgmt_(ingest|phantom)\s", out, re.M), out
    # a real cohort (a copy of the phantom's folder as cohort.root): the same rules without
    # the phantom, ingest inputs are the shard's patient folders, no oracle
    shutil.copytree(workdir / "resources/mgmt/phantom", workdir / "data/rsna")
    write_config(workdir, cohort={"layout": "rsna-miccai-2021", "root": "data/rsna"})
    out = snakemake(workdir, "-n", "--forceall", "results/mgmt/holdout.tsv").stdout
    assert re.search(r"^mgmt_ingest\s+2$", out, re.M) and "mgmt_phantom" not in out, out
    assert re.search(r"input: data/rsna/train_labels.csv, data/rsna/train/\d{5}, ", out), out
    assert "planted.tsv" not in out
    # determinism: a model retrained from scratch predicts byte-identical scores
    write_config(workdir)
    pred = res / "pred/3d/fold1.tsv"
    before = pred.read_bytes()
    shutil.rmtree(res / "train/3d/fold1")
    pred.unlink()
    snakemake(workdir, str(pred.relative_to(workdir)))
    assert pred.read_bytes() == before
    # without the exclusions the degenerate case is one clear error naming patient and series,
    # and its shard leaves no partial output
    write_config(workdir, exclude=[])
    shards = ["results/mgmt/cases/shard0", "results/mgmt/cases/shard1"]
    proc = snakemake(workdir, *shards, "--keep-going", check=False)
    assert proc.returncode != 0
    logs = {s: (workdir / f"logs/mgmt/mgmt_ingest/shard{s}.log").read_text() for s in (0, 1)}
    bad = [s for s in (0, 1) if "00109/FLAIR" in logs[s]]
    assert len(bad) == 1, logs
    assert re.search(r"train/00109/FLAIR: series 1 'FLAIR' .*single slice position", logs[bad[0]])
    assert not (workdir / shards[bad[0]]).exists()
