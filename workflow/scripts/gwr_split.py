"""Rule gwr_split: the patient split the DAG was built with, as results/gwr/split.tsv."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)
import pandas as pd

from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    split = snakemake.params.split
    df = pd.DataFrame({"patient": list(split), "split": list(split.values())})
    log.info("split: %s", df.split.value_counts().to_dict())
    write_tsv(df, snakemake.output[0])
