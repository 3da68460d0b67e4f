"""Rule ms_phantom: one MS phantom subject in the ISBI 2015 layout (voxflow.phantoms.ms)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.images import read_image
from voxflow.logs import rule_logging
from voxflow.phantoms.brain import MAPS, BrainAnatomy
from voxflow.phantoms.ms import make_ms_subject, write_isbi2015

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    folder = Path(snakemake.input[0]).parent
    vols = {m: read_image(folder / f"{m}.nii.gz") for m in MAPS}
    anat = BrainAnatomy(folder.name, *(vols[m].data for m in MAPS), affine=vols["t1"].affine)
    subject = make_ms_subject(anat, snakemake.params.seed)
    root = Path(snakemake.output[0]).parents[3]  # <root>/training/trainingNN/preprocessed/
    write_isbi2015(subject, root, int(snakemake.wildcards.index))
    log.info(
        "%s: %d lesions, %.2f ml; lesion/WM %s",
        folder.name,
        subject.n_lesions,
        subject.mask1.sum() * anat.voxel_ml,
        subject.lesion_ratio,
    )
