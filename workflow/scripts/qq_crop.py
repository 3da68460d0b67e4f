"""Rule qq_crop: read and check one subject, crop to the ROI, cache as NIfTI."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.layouts.qq import QQCase, load_case
from voxflow.logs import rule_logging
from voxflow.studies.qq import crop_case, write_cropped

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    folder = Path(snakemake.input[0]).parent
    data = load_case(QQCase(snakemake.wildcards.subject, folder), snakemake.params.n_echoes)
    cropped = crop_case(data, snakemake.params.crop)
    write_cropped(cropped, Path(snakemake.output[0]).parent)
    log.info(
        "%s: %s -> crop %s, %d mask voxels",
        data.subject,
        data.mgre.shape,
        cropped["mask"].shape,
        int(cropped["mask"].sum()),
    )
