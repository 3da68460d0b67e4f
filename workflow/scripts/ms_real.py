"""Rule ms_real: phantom-trained models and thresholds on a real cohort (results/ms/real.tsv)."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.ms import real_check

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    p = snakemake.params
    runs = [
        (model, channel, Path(path))
        for (model, channel), path in zip(p.runs, snakemake.input.models, strict=True)
    ]
    thresholds = {Path(f).stem: json.loads(Path(f).read_text()) for f in snakemake.input.thresholds}
    pre = Path(snakemake.input.images[0]).parents[1]
    table = real_check(
        runs,
        p.channels,
        [pre / case for case in p.cases],
        dict(zip(p.cases, map(Path, snakemake.input.native_masks), strict=True)),
        thresholds,
        p.cfg,
        p.device,
    )
    log.info("real cohort:\n%s", table.to_string(index=False))
    write_tsv(table, snakemake.output[0])
