"""Rules gwr_split, qq_split, l3_folds: the split the DAG was built with, as a TSV.

``params.table`` maps each patient/subject to its split or fold; ``params.columns`` names the
two columns (e.g. ``[patient, fold]``).
"""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)
import pandas as pd

from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    table = snakemake.params.table
    key, value = snakemake.params.columns
    df = pd.DataFrame({key: list(table), value: list(table.values())})
    log.info("%s: %s", value, df[value].value_counts().sort_index().to_dict())
    write_tsv(df, snakemake.output[0])
