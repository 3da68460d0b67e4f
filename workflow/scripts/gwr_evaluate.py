"""Rule gwr_evaluate: Dice per structure and GWR of one model's predictions; an overlay."""

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import write_tsv
from voxflow.logs import rule_logging
from voxflow.studies.gwr import evaluate, plot_overlay, read_outcomes

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    inp, params = snakemake.input, snakemake.params
    dice_table, gwr_table = evaluate(
        snakemake.wildcards.anymodel,
        params.patients,
        params.split,
        inp.ct,
        inp.reference,
        inp.pred,
        read_outcomes(inp.outcomes[0] if inp.outcomes else None),
        params.threshold,
    )
    log.info("mean Dice per structure:\n%s", dice_table.groupby("structure").dice.mean())
    write_tsv(dice_table, snakemake.output.dice)
    write_tsv(gwr_table, snakemake.output.gwr)
    val = [i for i, p in enumerate(params.patients) if params.split[p] == "val"][0]
    plot_overlay(inp.ct[val], inp.reference[val], inp.pred[val], snakemake.output.overlay)
