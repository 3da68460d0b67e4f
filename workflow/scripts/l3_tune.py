"""Rule l3_tune: one worker of the Bayesian optimisation of one (arm, fold) (resumable)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.l3 import tune_worker

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    wc = snakemake.wildcards
    tune_worker(
        journal=Path(snakemake.params.journal),
        out_tsv=Path(snakemake.output[0]),
        arm=wc.arm,
        fold=int(wc.fold),
        worker=int(wc.worker),
        folds_tsv=Path(snakemake.input.folds),
        slices=list(map(Path, snakemake.input.slices)),
        cfg=snakemake.params.cfg,
        tune=snakemake.params.tune,
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
    )
