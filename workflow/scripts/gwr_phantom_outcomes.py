"""Rule gwr_phantom_outcomes: the phantom cohort's outcomes.csv (patient, poor_outcome)."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.atomic import write_text_atomic
from voxflow.logs import rule_logging
from voxflow.phantoms.gwr import GWRPhantomConfig, outcomes

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    cfg = GWRPhantomConfig.from_dict(dict(snakemake.params.phantom))
    params = [json.loads(Path(p).read_text()) for p in snakemake.input]
    rows = outcomes(params, snakemake.params.seed, cfg)
    log.info("poor outcome in %d of %d patients", sum(r[1] for r in rows), len(rows))
    text = "patient,poor_outcome\n" + "".join(f"{p},{o}\n" for p, o in rows)
    write_text_atomic(snakemake.output[0], text)
