"""Rule gwr_train: the own 3D U-Net on the training patients (resumes after a kill)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.gwr import read_fingerprint, train_model
from voxflow.train.loop import run_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    split = snakemake.params.split
    pre = Path(snakemake.input.images[0]).parents[1]
    dirs = {s: [pre / p for p, r in split.items() if r == s] for s in ("train", "val")}
    log.info("train %d patients, val %d patients", len(dirs["train"]), len(dirs["val"]))
    train_model(
        snakemake.wildcards.gwrmodel,
        dirs["train"],
        dirs["val"],
        read_fingerprint(snakemake.input.fingerprint),
        Path(snakemake.output.model).parent,
        snakemake.params.cfg,
        snakemake.params.seed,
        snakemake.params.device,
        snakemake.threads,
        run_fingerprint(snakemake.input, [snakemake.params.cfg, snakemake.params.seed]),
    )
