"""Rule mgmt_splits: 80/20 stratified holdout, then StratifiedKFold on the 80 % (the paper's)."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.layouts.mgmt import read_patients
from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.mgmt import make_splits

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    p = snakemake.params
    labels = read_patients(p.root, p.exclude)
    s = p.split
    df = make_splits(labels, p.seed, s["holdout"], s["folds"], s["random_state"])
    log.info("%s", df.groupby(["role", "fold", "MGMT_value"]).size().to_dict())
    write_tsv(df, snakemake.output[0])
