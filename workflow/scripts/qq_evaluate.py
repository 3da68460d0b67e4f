"""Rule qq_evaluate: whole-crop inference on the test subjects; RMSE per parameter and OEF."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.qq import evaluate_model

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    test = sorted({Path(p).parent for p in snakemake.input.test})
    table = evaluate_model(
        snakemake.wildcards.qqmodel,
        Path(snakemake.input.model),
        test,
        json.loads(Path(snakemake.input.norm).read_text()),
        snakemake.params.cfg,
        snakemake.params.device,
        Path(snakemake.output.pred[0]).parent,
    )
    log.info("test RMSE:\n%s", table.to_string(index=False))
    write_tsv(table, snakemake.output.table)
