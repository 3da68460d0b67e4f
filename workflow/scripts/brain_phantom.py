"""Rule brain_phantom: write one brain phantom subject (see voxflow.phantoms.brain)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import config_from_dict, make_brain, read_template, write_brain

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg = config_from_dict(dict(snakemake.params.phantom))
    subject = snakemake.wildcards.subject
    log.info("brain phantom %s, seed %d, %s", subject, snakemake.params.seed, cfg)
    template = read_template(snakemake.input[0])
    anatomy = make_brain(subject, snakemake.params.seed, cfg, template)
    paths = write_brain(anatomy, Path(snakemake.output[0]).parent)
    log.info("volumes (ml): %s", {k: round(v, 1) for k, v in anatomy.volumes_ml().items()})
