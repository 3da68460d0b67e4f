"""Rule l3_phantom: one whole-body CT patient (DICOM, maybe with a scout) and its ground truth."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.l3 import L3PhantomConfig, make_patient, write_patient

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg = L3PhantomConfig.from_dict(dict(snakemake.params.phantom))
    patient = make_patient(snakemake.wildcards.patient, snakemake.params.seed, cfg)
    log.info("%s: %s", snakemake.wildcards.patient, patient["params"])
    root = Path(snakemake.output.ct).parent
    truth = Path(snakemake.output.params).parents[1]
    write_patient(patient, root, truth, snakemake.params.seed)
