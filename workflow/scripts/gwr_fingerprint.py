"""Rule gwr_fingerprint: nnU-Net-style CT intensity statistics of the training patients and
where their landmarks sit relative to the cranial cavity (the ROI)."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.atomic import write_text_atomic
from voxflow.logs import rule_logging
from voxflow.studies.gwr import intensity_fingerprint, roi_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    dirs = sorted({Path(p).parent for p in snakemake.input})
    fp = {**intensity_fingerprint(dirs), **roi_fingerprint(dirs, snakemake.params.roi_mm)}
    log.info("fingerprint of %d training patients: %s", len(dirs), fp)
    write_text_atomic(snakemake.output[0], json.dumps(fp, indent=2) + "\n")
