"""Rule ms_split: seeded subject-level train/val/test split."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.ms import make_split

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    split = make_split(snakemake.params.cases, snakemake.params.seed, snakemake.params.fractions)
    log.info("split: %s", split["split"].value_counts().to_dict())
    write_tsv(split, snakemake.output[0])
