"""Rule brain_template: the MNI152 template pre-filtered for the phantom's voxel size, built
once so each brain_phantom job reads it instead of rebuilding it (see voxflow.phantoms.brain)."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import load_template, write_template

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    template = load_template(float(snakemake.params.voxel_mm))
    write_template(template, snakemake.output[0])
    log.info("MNI152 template for %s mm -> %s", template.voxel_mm, snakemake.output[0])
