"""The ms study's DAG end to end on a tiny config (6 mm phantoms, 2 epochs)."""

import copy

import pandas as pd
import pytest
import yaml
from shared_data import OPEN_MS, needs
from workflow_copy import TINY_STUDY, assert_phantom_passes_check

TINY_MS = {
    **TINY_STUDY,
    "studies": ["ms"],
    "ms": {
        "cohort": {"layout": "isbi2015", "root": ""},
        "phantom": {"subjects": 5, "voxel_mm": 6.0},
        "channels": ["flair", "mprage"],
        "models": ["resunet3d"],
        "multichannel": True,
        "patch_size": 16,
        "patch_overlap": 4,
        "samples_per_volume": 2,
        "batch_size": 2,
        "model": {"base_filters": 4, "depth": 2, "dropout": 0.1},
        "augment": {"flip": 0.5, "noise": 0.2},
        "train": {"epochs": 2, "lr": 3.0e-3, "patience": 0},
        "train_overrides": {"mprage": {"epochs": 1}},
        "real_check": {"layout": "open_ms_data", "root": ""},
    },
}


@pytest.mark.slow
def test_ms_dag_table_rerun_and_per_channel_invalidation(snakemake, workdir):
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_MS))
    snakemake(workdir)
    assert_phantom_passes_check(workdir, "ms")
    table = pd.read_csv(workdir / "results/ms/dsc.tsv", sep="\t")
    assert list(table.columns) == [
        "model",
        "channel",
        "n_test",
        "dsc",
        "mean_iou",
        "hd95_mm",
        "lesion_f1",
    ]
    rows = set(zip(table["model"], table["channel"], strict=True))
    assert rows == {
        ("resunet3d", "flair"),
        ("resunet3d", "mprage"),
        ("resunet3d", "multi"),
        ("threshold", "flair"),
        ("threshold", "mprage"),
    }
    assert (table["n_test"] == 1).all() and table["dsc"].between(0, 1).all()
    layout = workdir / "resources/ms/phantom/training/training03"
    assert (layout / "preprocessed/training03_01_pd_pp.nii").is_file()
    assert (layout / "masks/training03_01_mask2.nii").is_file()
    hist = pd.read_csv(workdir / "results/ms/train/resunet3d/mprage/history.tsv", sep="\t")
    assert len(hist) == 1  # the mprage override
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    changed = copy.deepcopy(TINY_MS)
    changed["ms"]["train_overrides"]["mprage"]["epochs"] = 2
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(changed))
    plan = snakemake(workdir, "-n").stdout
    assert "channel=mprage" in plan and "channel=flair" not in plan and "channel=multi" not in plan


@pytest.mark.slow
@needs(OPEN_MS)
def test_ms_real_check_on_patient26(snakemake, workdir):
    """results/ms/real.tsv: the phantom-trained models and thresholds on the real patient26,
    through the DAG; "auto" finds ../shared beside the workflow; a rerun plans nothing."""
    cfg = copy.deepcopy(TINY_MS)
    cfg["ms"]["real_check"] = {"layout": "open_ms_data", "root": str(OPEN_MS)}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(workdir, "results/ms/real.tsv")
    real = pd.read_csv(workdir / "results/ms/real.tsv", sep="\t")
    assert real[["model", "channel", "channels_used"]].values.tolist() == [
        ["resunet3d", "flair", "flair"],
        ["resunet3d", "mprage", "mprage"],
        ["resunet3d", "multi", "flair+mprage"],
        ["threshold", "flair", "flair"],
        ["threshold", "mprage", "mprage"],
    ]
    assert (real["case"] == "patient26").all() and real["dsc"].between(0, 1).all()
    pre = workdir / "results/ms/real/preprocessed/patient26"
    assert sorted(p.name for p in pre.iterdir()) == [
        "flair.nii.gz",
        "mask.nii.gz",
        "mprage.nii.gz",
    ]
    assert "Nothing to be done" in snakemake(workdir, "-n", "results/ms/real.tsv").stdout
    # "auto": the real check joins the default target when ../shared is beside the workflow
    cfg["ms"]["real_check"]["root"] = "auto"
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    # (the rule's own line: this test's tmp path also contains "ms_real")
    assert "rule ms_real:" not in snakemake(workdir, "-n", "--forceall").stdout
    asked = snakemake(workdir, "-n", "results/ms/real.tsv", check=False)
    assert asked.returncode != 0 and "needs a real cohort" in asked.stdout + asked.stderr
    (workdir.parent / "shared" / "data" / "ms").mkdir(parents=True)
    (workdir.parent / "shared" / "data" / "ms" / "open_ms_data").symlink_to(OPEN_MS)
    assert "rule ms_real:" in snakemake(workdir, "-n", "--forceall").stdout
