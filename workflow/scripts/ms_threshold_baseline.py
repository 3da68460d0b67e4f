"""Rule ms_threshold_baseline: best intensity threshold on train cases, scored on test cases;
the tuned rule is kept (JSON) for the real-cohort check."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.atomic import write_json
from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.ms import threshold_baseline

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]):
    split = read_tsv(snakemake.input.split, required=["case", "split"])
    pre = Path(snakemake.input.images[0]).parents[1]
    dirs = {s: [pre / c for c in split.loc[split.split == s, "case"]] for s in ("train", "test")}
    table, rule = threshold_baseline(dirs["train"], dirs["test"], snakemake.wildcards.channel)
    write_tsv(table, snakemake.output.table)
    write_json(snakemake.output.rule, rule)
