"""Rule gwr_table: results/gwr/summary.tsv (Table 1), dice.tsv, gwr.tsv, the Dice histogram."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)
import pandas as pd

from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.gwr import plot_dice_histogram, summarize

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    dice_table = pd.concat([read_tsv(p) for p in snakemake.input.dice])
    gwr_table = pd.concat([read_tsv(p) for p in snakemake.input.gwr])
    summary = summarize(dice_table)
    log.info("Table 1:\n%s", summary.to_string(index=False))
    write_tsv(summary, snakemake.output.summary)
    write_tsv(dice_table, snakemake.output.dice)
    write_tsv(gwr_table, snakemake.output.gwr)
    plot_dice_histogram(dice_table, snakemake.output.histogram)
