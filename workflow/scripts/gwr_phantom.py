"""Rule gwr_phantom: one post-arrest CT (DICOM) + MR + MR labels patient, and its ground truth."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import read_template
from voxflow.phantoms.gwr import GWRPhantomConfig, make_patient, write_patient

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg = GWRPhantomConfig.from_dict(dict(snakemake.params.phantom))
    template = read_template(snakemake.input[0])
    patient = make_patient(snakemake.wildcards.patient, snakemake.params.seed, cfg, template)
    log.info("%s: %s", snakemake.wildcards.patient, patient["params"])
    root = Path(snakemake.output.mr).parents[1]
    truth = Path(snakemake.output.params).parents[1]
    write_patient(patient, root, truth, snakemake.params.seed)
