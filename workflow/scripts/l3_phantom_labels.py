"""Rule l3_phantom_labels: the phantom cohort's l3_labels.csv from the patients' ground truth."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.l3 import label_rows, write_labels

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    rows = label_rows([json.loads(Path(p).read_text()) for p in snakemake.input])
    log.info("%d patients", len(rows))
    write_labels(rows, snakemake.output[0])
