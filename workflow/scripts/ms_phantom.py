"""Rule ms_phantom: the MS phantom cohort in the ISBI 2015 layout (voxflow.phantoms.ms)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import config_from_dict, load_template
from voxflow.phantoms.ms import write_cohort

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    brain = config_from_dict(
        {**snakemake.params.brain, "voxel_mm": snakemake.params.phantom["voxel_mm"]}
    )
    root = Path(snakemake.output[0]).parents[3]  # <root>/training/trainingNN/preprocessed/
    summaries = write_cohort(
        root,
        int(snakemake.params.phantom["subjects"]),
        snakemake.params.seed,
        brain,
        load_template(brain.voxel_mm),
        workers=snakemake.threads,
    )
    for s in summaries:
        log.info("%s", s)
