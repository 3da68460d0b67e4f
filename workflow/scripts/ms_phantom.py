"""Rule ms_phantom: one MS phantom subject in the ISBI 2015 layout (voxflow.phantoms.ms)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import read_brain
from voxflow.phantoms.ms import make_ms_subject, write_isbi2015

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    anat = read_brain(Path(snakemake.input[0]).parent)
    subject = make_ms_subject(anat, snakemake.params.seed)
    root = Path(snakemake.output[0]).parents[3]  # <root>/training/trainingNN/preprocessed/
    write_isbi2015(subject, root, int(snakemake.wildcards.index))
    log.info(
        "%s: %d lesions, %.2f ml; lesion/WM %s",
        anat.subject,
        subject.n_lesions,
        subject.mask1.sum() * anat.voxel_ml,
        subject.lesion_ratio,
    )
