"""Rule qq_train: train one qq network with the shared Trainer (resumes after a kill)."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.qq import train_model
from voxflow.train.loop import run_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    train = sorted({Path(p).parent for p in snakemake.input.train})
    val = sorted({Path(p).parent for p in snakemake.input.val})
    log.info("train %d subjects, val %d subjects", len(train), len(val))
    train_model(
        snakemake.wildcards.qqmodel,
        train,
        val,
        json.loads(Path(snakemake.input.norm).read_text()),
        Path(snakemake.output.model).parent,
        snakemake.params.cfg,
        snakemake.params.seed,
        snakemake.params.device,
        snakemake.threads,
        run_fingerprint(snakemake.input, [snakemake.params.cfg, snakemake.params.seed]),
    )
