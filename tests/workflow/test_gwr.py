"""The gwr study's DAG end to end on a tiny config (3 mm phantoms, a few steps per model)."""

import re

import pandas as pd
import pytest
import yaml
from workflow_copy import TINY_GWR, assert_phantom_passes_check


def planned_rules(stdout: str) -> set[str]:
    """Rules a dry run would execute, from its job-stats table."""
    table = stdout.split("Job stats:")[1].split("total")[0]
    return set(re.findall(r"^(\w+)\s+\d+$", table, re.M))


@pytest.mark.slow
def test_gwr_dag_tables_rerun_and_registration_change(snakemake, workdir):
    models = TINY_GWR["gwr"]["models"]
    pytest.importorskip("nnunetv2") if "nnunet" in models else None
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_GWR))
    snakemake(workdir)
    assert_phantom_passes_check(workdir, "gwr")
    summary = pd.read_csv(workdir / "results/gwr/summary.tsv", sep="\t")
    assert list(summary.columns) == ["model", "split", "n", "mean_dice", "sd_dice"]
    assert sorted(summary.model.unique()) == sorted(models)
    assert summary[summary.split == "all"].n.tolist() == [4] * len(models)
    dice = pd.read_csv(workdir / "results/gwr/dice.tsv", sep="\t")
    assert list(dice.columns) == ["model", "patient", "split", "structure", "dice"]
    assert len(dice) == 4 * 4 * len(models) and dice.dice.between(0, 1).all()
    gwr = pd.read_csv(workdir / "results/gwr/gwr.tsv", sep="\t")
    assert list(gwr.columns)[:2] == ["model", "patient"]
    assert {"gwr_true", "gwr_pred", "poor_true", "poor_pred"} <= set(gwr.columns)
    assert gwr.gwr_true.between(1.0, 1.5).all() and gwr.poor_true.isin([0, 1]).all()
    reg = pd.read_csv(workdir / "results/gwr/registration.tsv", sep="\t")
    assert list(reg.columns) == ["patient", "tre_mm", "seconds"]
    assert (reg.tre_mm < 1.5).all(), reg  # 3 mm MR voxels, 6 mm CT slices
    for png in ("results/gwr/dice_histogram.png", "results/gwr/registered/p001/qc.png"):
        assert (workdir / png).stat().st_size > 5000
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    # new registration settings: registration and everything after it, nothing before
    changed = {**TINY_GWR, "register": {**TINY_GWR["register"], "histogram_bins": 24}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(changed))
    rules = planned_rules(snakemake(workdir, "-n").stdout)
    assert {"register_mr_to_ct", "gwr_preprocess", "gwr_train", "gwr_table"} <= rules
    assert not rules & {"gwr_phantom", "gwr_template", "gwr_ct_to_nifti", "gwr_phantom_outcomes"}
    # a larger cohort makes only the new patient (and what pools over patients)
    grown = {**TINY_GWR, "gwr": {**TINY_GWR["gwr"]}}
    grown["gwr"]["phantom"] = {**TINY_GWR["gwr"]["phantom"], "patients": 5}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(grown))
    out = snakemake(workdir, "-n").stdout
    assert re.search(r"^gwr_phantom\s+1$", out, re.M), out
    assert re.search(r"^gwr_ct_to_nifti\s+1$", out, re.M), out
