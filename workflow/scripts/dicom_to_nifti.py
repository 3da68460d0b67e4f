"""Rule dicom_to_nifti: one DICOM series -> NIfTI + JSON sidecar (see voxflow.io.dicom)."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.dicom import dicom_to_nifti
from voxflow.logs import rule_logging

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg = snakemake.params.dicom
    log.info("converting %s (backend %s)", snakemake.input[0], cfg["backend"])
    dicom_to_nifti(
        snakemake.input[0],
        snakemake.output.nifti,
        snakemake.output.sidecar,
        description=cfg["series"]["description"],
        plane=cfg["series"]["plane"],
        min_slices=cfg["min_slices"],
        gantry_tilt=cfg["gantry_tilt"],
        backend=cfg["backend"],
    )
