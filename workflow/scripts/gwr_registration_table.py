"""Rule gwr_registration_table: results/gwr/registration.tsv (patient, tre_mm, seconds)."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.studies.gwr import registration_table

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    table = registration_table(
        snakemake.params.patients,
        snakemake.input.info,
        snakemake.input.ct,
        snakemake.input.truth or None,
        snakemake.output[0],
    )
    log.info("registration:\n%s", table.to_string(index=False))
