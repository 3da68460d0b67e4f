"""Rule l3_best: the best design and the trial table of one (arm, fold)'s study."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.l3 import collect_study

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    best = collect_study(
        Path(snakemake.params.journal),
        list(map(Path, snakemake.input)),
        snakemake.wildcards.arm,
        Path(snakemake.output.best),
        Path(snakemake.output.trials),
    )
    log.info("best design: %s", best)
