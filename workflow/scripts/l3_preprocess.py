"""Rule l3_preprocess: one CT as windowed, resized slices (feet -> head) with L3 labels."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.l3 import case_labels, preprocess_case

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    is_l3 = case_labels(
        snakemake.wildcards.patient,
        snakemake.input.ct,
        snakemake.input.labels,
        snakemake.params.labels,
        snakemake.params.patients,
    )
    preprocess_case(
        snakemake.input.ct,
        snakemake.output[0],
        is_l3,
        snakemake.params.image_size,
        snakemake.params.window,
    )
