"""Rule l3_predict: per-slice L3 probabilities of a fold's test patients."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.l3 import predict_table

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    df = predict_table(
        snakemake.input.model,
        list(snakemake.input.slices),
        snakemake.params.cfg,
        snakemake.params.device,
        snakemake.output[0],
    )
    log.info("%d slices of %d patients", len(df), df.patient.nunique())
