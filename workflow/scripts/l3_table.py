"""Rule l3_table: slice errors, Table 2 / Fig. 4 summary, best designs, tuning history."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.l3 import tables

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    summary = tables(
        snakemake.params.runs,
        list(snakemake.input.pred),
        list(snakemake.input.best),
        list(snakemake.input.trials),
        list(snakemake.input.slices),
        snakemake.params.decode,
        dict(snakemake.output.items()),
    )
    log.info("Table 2:\n%s", summary.to_string(index=False))
