"""Rule l3_train: the tuned design trained on a fold's training patients (resumes after a kill)."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.l3 import fold_seed, train_classifier
from voxflow.train.loop import run_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    wc, p = snakemake.wildcards, snakemake.params
    best = json.loads(Path(snakemake.input.best).read_text())["params"]
    log.info("%s fold %s: %s on %d patients", wc.arm, wc.fold, best, len(snakemake.input.slices))
    train_classifier(
        best,
        list(snakemake.input.slices),
        None,
        p.cfg,
        fold_seed(p.seed, wc.arm, int(wc.fold)),
        Path(snakemake.output.model).parent,
        p.device,
        snakemake.threads,
        run_fingerprint(snakemake.input, [p.cfg, p.seed]),
    )
