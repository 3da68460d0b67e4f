"""Rule qq_fit: voxelwise NLLS fit of the QQ model on one test subject (reference arm)."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)
import numpy as np
import pandas as pd

from voxflow.io.images import write_nifti
from voxflow.io.layouts.qq import read_echo_times
from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.qq import TABLE_COLUMNS, fit_case, read_cropped

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    folder = Path(snakemake.input.cropped[0]).parent
    te = read_echo_times(Path(snakemake.input.echo_times), snakemake.wildcards.subject)
    norm = json.loads(Path(snakemake.input.norm).read_text())
    pred, row = fit_case(folder, te, norm, snakemake.params.fit)
    log.info("fit: %s", row)
    affine = read_cropped(folder)["affine"]
    write_nifti(snakemake.output.pred, np.moveaxis(pred, 0, -1), affine, np.float32)
    write_tsv(pd.DataFrame([row], columns=TABLE_COLUMNS), snakemake.output.table)
