"""Rules ms_preprocess and ms_real_preprocess: resample (optional), crop one case to the head
and normalise each channel."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.layouts.ms import MSCase
from voxflow.logs import rule_logging
from voxflow.studies.ms import preprocess_case

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    *images, mask = map(Path, snakemake.input)
    channels = [Path(p).name.removesuffix(".nii.gz") for p in snakemake.output[:-1]]
    case = MSCase(snakemake.wildcards.case, dict(zip(channels, images, strict=True)), mask)
    out_dir = Path(snakemake.output[0]).parent
    paths = preprocess_case(
        case,
        out_dir,
        spacing_mm=snakemake.params.spacing_mm,
        normalise=snakemake.params.normalise,
    )
    log.info("%s: wrote %s", case.case, sorted(paths))
