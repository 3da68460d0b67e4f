"""Rule qq_normalisation: channel means/stds from the training subjects only."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.qq import normalisation, save_json

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    folders = sorted({Path(p).parent for p in snakemake.input.train})
    norm = normalisation(folders, snakemake.params.input_transform)
    log.info("from %d training subjects: %s", len(folders), norm)
    save_json(norm, Path(snakemake.output[0]))
