"""Rule mgmt_ingest: one shard of patients through the DICOM stage (four series each) and the
paper's preprocessing -> <shard>/<id>.npz (+ nifti/<id>/<series>.nii.gz and .json)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.dicom import dicom_to_nifti, sidecar_path
from voxflow.io.layouts.mgmt import SERIES, series_folder
from voxflow.logs import rule_logging
from voxflow.studies.mgmt import preprocess_patient

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    p = snakemake.params
    out = Path(snakemake.output[0])
    dicom = p.dicom
    for pid in p.ids:
        niftis = {}
        for name in SERIES:
            niftis[name] = out / "nifti" / pid / f"{name}.nii.gz"
            dicom_to_nifti(
                series_folder(p.root, pid, name),
                niftis[name],
                sidecar_path(niftis[name]),
                min_slices=dicom["min_slices"],
                gantry_tilt=dicom["gantry_tilt"],
                backend=dicom["backend"],
            )
        shapes = preprocess_patient(niftis, out / f"{pid}.npz", p.cfg)
        log.info("%s: %s", pid, shapes)
    log.info("%d patients -> %s", len(p.ids), out)
