"""Rule gwr_preprocess: labels renumbered, CT + labels resampled and cropped to the head."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.gwr import preprocess_case

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    paths = preprocess_case(
        snakemake.input.ct,
        snakemake.input.labels,
        Path(snakemake.output[0]).parent,
        snakemake.params.spacing_mm,
        snakemake.params.labels,
    )
    log.info("wrote %s", sorted(map(str, paths.values())))
