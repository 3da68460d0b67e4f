"""Rule gwr_predict: own U-Net labels for every patient, on each patient's CT grid."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.gwr import predict_cases, read_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    predict_cases(
        snakemake.wildcards.gwrmodel,
        Path(snakemake.input.model),
        [Path(p).parent for p in snakemake.input.images],
        list(map(Path, snakemake.input.ct)),
        list(map(Path, snakemake.output)),
        read_fingerprint(snakemake.input.fingerprint),
        snakemake.params.cfg,
        snakemake.params.device,
    )
