"""The l3 study's DAG end to end on a tiny config (6 phantoms, 2 folds, 2 tuning workers)."""

import re

import pandas as pd
import pytest
import yaml
from workflow_copy import TINY_L3, assert_phantom_passes_check


@pytest.mark.slow
def test_l3_dag_tables_studies_and_rerun(snakemake, workdir):
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(TINY_L3))
    snakemake(workdir)
    assert_phantom_passes_check(workdir, "l3")
    summary = pd.read_csv(workdir / "results/l3/summary.tsv", sep="\t")
    assert list(summary.columns)[:1] == ["arm"]
    assert {"mean_error", "sd_error", "r2", "slope", "intercept"} <= set(summary.columns)
    assert sorted(summary.arm) == ["control", "proposed"]
    errors = pd.read_csv(workdir / "results/l3/slice_error.tsv", sep="\t")
    assert list(errors.columns) == [
        "arm",
        "fold",
        "patient",
        "true_slice",
        "pred_slice",
        "error_slices",
        "error_mm",
    ]
    assert len(errors) == 2 * 6 and set(errors.fold) == {0, 1}
    assert (errors.error_slices == (errors.pred_slice - errors.true_slice).abs()).all()
    best = pd.read_csv(workdir / "results/l3/best_params.tsv", sep="\t")
    assert len(best) == 4
    control = best[best.arm == "control"]
    assert (control.oversampling == 0).all() and (control.class_weight == 0).all()
    for arm in ("proposed", "control"):
        for fold in (0, 1):
            folder = workdir / f"results/l3/optuna/{arm}/fold{fold}"
            trials = pd.read_csv(folder / "trials.tsv", sep="\t")
            assert (trials.state == "COMPLETE").sum() == 3
            assert (folder / "study.journal").stat().st_size > 0
    for png in ("results/l3/scatter.png", "results/l3/optuna_history.png"):
        assert (workdir / png).stat().st_size > 5000
    assert "Nothing to be done" in snakemake(workdir, "-n").stdout
    # the decoding's smoothing is not a tuning setting: only the tables are redone
    smooth = {**TINY_L3, "l3": {**TINY_L3["l3"], "decode": {"smooth_slices": 1, "threshold": 0.5}}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(smooth))
    out = snakemake(workdir, "-n").stdout
    assert re.search(r"^l3_table\s+1$", out, re.M) and not re.search(
        r"^l3_(tune|train)\s", out, re.M
    )
    # a larger budget continues the studies: only tuning and what follows it reruns
    more = {**TINY_L3, "l3": {**TINY_L3["l3"], "tune": {**TINY_L3["l3"]["tune"], "trials": 4}}}
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(more))
    out = snakemake(workdir, "-n").stdout
    assert re.search(r"^l3_tune\s+8$", out, re.M), out
    assert not re.search(r"^l3_(phantom|ct_to_nifti|preprocess)\s", out, re.M), out
