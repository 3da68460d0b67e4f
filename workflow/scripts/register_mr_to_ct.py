"""Rule register_mr_to_ct: rigid MR -> CT registration; transform, labels on the CT grid, QC."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.atomic import write_json
from voxflow.logs import rule_logging
from voxflow.register import RegistrationConfig, register_mr_to_ct

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg = RegistrationConfig.from_dict(dict(snakemake.params.cfg))
    log.info("registering %s to %s", snakemake.input.moving, snakemake.input.fixed)
    result = register_mr_to_ct(
        snakemake.input.fixed,
        snakemake.input.moving,
        snakemake.input.labels,
        snakemake.output.transform,
        snakemake.output.labels,
        snakemake.output.qc,
        cfg,
    )
    info = {"seconds": round(result.seconds, 3), "metric": result.metric}
    log.info("done: %s", info)
    write_json(snakemake.output.info, info)
