"""Rule mgmt_phantom: the glioblastoma cohort in the Kaggle layout, its labels and planted truth."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import load_template
from voxflow.phantoms.mgmt import MGMTPhantomConfig, ceiling_auc, write_cohort

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    phantom = dict(snakemake.params.phantom)
    cfg = MGMTPhantomConfig.from_dict(phantom)
    log.info(
        "%d patients, effect %g (best AUC %.3f)",
        phantom["patients"],
        cfg.effect,
        ceiling_auc(cfg.effect),
    )
    write_cohort(
        Path(snakemake.output.labels).parent,
        snakemake.output.planted,
        int(phantom["patients"]),
        snakemake.params.seed,
        cfg,
        load_template(cfg.voxel_mm),
        workers=snakemake.threads,
    )
