"""Rule ms_train: train one (model, channel) with the shared Trainer (resumes after a kill)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import read_tsv
from voxflow.logs import rule_logging
from voxflow.studies.ms import train_model
from voxflow.train.loop import run_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    split = read_tsv(snakemake.input.split, required=["case", "split"])
    pre = Path(snakemake.input.images[0]).parents[1]
    dirs = {s: [pre / c for c in split.loc[split.split == s, "case"]] for s in ("train", "val")}
    log.info("train %d cases, val %d cases", len(dirs["train"]), len(dirs["val"]))
    train_model(
        snakemake.wildcards.model,
        snakemake.wildcards.channel,
        snakemake.params.channels,
        dirs["train"],
        dirs["val"],
        Path(snakemake.output.model).parent,
        snakemake.params.cfg,
        snakemake.params.seed,
        snakemake.params.device,
        snakemake.threads,
        run_fingerprint(snakemake.input, [snakemake.params.cfg, snakemake.params.seed]),
    )
