"""Rule ms_table: results/ms/dsc.tsv, one row per (model, channel), and the per-case table."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)
import pandas as pd

from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.ms import summarize

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    per_case = pd.concat([read_tsv(p) for p in [*snakemake.input.runs, *snakemake.input.baselines]])
    table = summarize(per_case)
    log.info("results:\n%s", table.to_string(index=False))
    write_tsv(per_case, snakemake.output.per_case)
    write_tsv(table, snakemake.output.table)
