"""Rule qq_table: results/qq/rmse.tsv (Table 2), oef_rmse.tsv (Table 3), the OEF map figure."""

import json
from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)
import pandas as pd

from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.qq import plot_oef_maps, summarize, train_mean_rows

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    norm = json.loads(Path(snakemake.input.norm).read_text())
    test = sorted({Path(p).parent for p in snakemake.input.test})
    per_subject = pd.concat(
        [read_tsv(p) for p in [*snakemake.input.runs, *snakemake.input.fits]]
        + [train_mean_rows(test, norm)]
    )
    table, oef = summarize(per_subject)
    log.info("RMSE:\n%s", table.to_string(index=False))
    write_tsv(table, snakemake.output.table)
    write_tsv(oef, snakemake.output.oef)
    truth = Path(snakemake.input.truth[0]).parent
    preds = {Path(p).parent.name: Path(p) for p in snakemake.input.preds}
    plot_oef_maps(truth, preds, snakemake.output.figure)
