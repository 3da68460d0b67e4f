"""Rule qq_phantom: one subject of the QSM+qBOLD phantom cohort (see voxflow.phantoms.qq)."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.logs import rule_logging
from voxflow.phantoms.brain import read_brain
from voxflow.phantoms.qq import QQPhantomConfig, make_qq_subject, write_qq_subject

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    p = snakemake.params.phantom
    cfg = QQPhantomConfig(
        n_echoes=snakemake.params.n_echoes, **{k: v for k, v in p.items() if k != "subjects"}
    )
    anat = read_brain(Path(snakemake.input[0]).parent)
    subject = make_qq_subject(anat, snakemake.params.seed, cfg)
    root = Path(snakemake.output[0]).parents[1]
    write_qq_subject(subject, root, snakemake.wildcards.subject)
    m = subject.mask.astype(bool)
    log.info(
        "%s: %d tissue voxels, mean Y %.3f, v %.4f, echoes %s s",
        anat.subject,
        m.sum(),
        float(subject.maps["Y"][m].mean()),
        float(subject.maps["v"][m].mean()),
        subject.echo_times.round(4).tolist(),
    )
