"""Rule gwr_fingerprint: nnU-Net-style CT intensity statistics of the training patients and
where their landmarks sit relative to the cranial cavity (the ROI)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.atomic import write_json
from voxflow.logs import rule_logging
from voxflow.studies.gwr import intensity_fingerprint, roi_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    dirs = sorted({Path(p).parent for p in snakemake.input})
    fp = {**intensity_fingerprint(dirs), **roi_fingerprint(dirs, snakemake.params.roi_mm)}
    log.info("fingerprint of %d training patients: %s", len(dirs), fp)
    write_json(snakemake.output[0], fp)
