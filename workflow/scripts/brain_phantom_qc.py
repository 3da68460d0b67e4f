"""Rule brain_phantom_qc: tissue-volume table and slice montage of the brain phantom cohort."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.evaluate.plots import plot_montage
from voxflow.io.images import read_image
from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.phantoms.brain import qc_table

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    dirs = [Path(d) for d in snakemake.params.subject_dirs]
    table = qc_table(dirs)
    log.info("phantom QC:\n%s", table.to_string(index=False))
    write_tsv(table, snakemake.output.table)
    t1 = [read_image(d / "t1.nii.gz").data for d in dirs]
    wm = [(read_image(d / "wm.nii.gz").data > 0.5).astype(float) for d in dirs]
    plot_montage(
        t1,
        [d.name for d in dirs],
        snakemake.output.montage,
        overlays=wm,
        row_labels=["axial", "coronal", "sagittal"],
    )
