"""Rule mgmt_table: per-fold metrics, mean ± SD, the holdout (with the planted oracle on
phantoms) and the ROC curve."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.studies import mgmt

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    p, out = snakemake.params, snakemake.output
    preds = {}
    for path in map(Path, snakemake.input.pred):
        preds[(path.parent.name, path.stem)] = read_tsv(path, ["BraTS21ID", "MGMT_value", "score"])
    folds = mgmt.fold_table({(m, int(s[4:])): d for (m, s), d in preds.items() if s != "final"})
    holdout = {m: d for (m, s), d in preds.items() if s == "final"}
    if snakemake.input.planted:
        planted = read_tsv(snakemake.input.planted[0], ["BraTS21ID", "MGMT_value", "score"])
        ids = next(iter(holdout.values()))["BraTS21ID"].astype(str).str.zfill(5)
        holdout["oracle"] = mgmt.oracle_predictions(planted, ids.tolist(), p.effect)
    table = mgmt.holdout_table(holdout, p.seed, p.bootstrap)
    write_tsv(folds, out.folds)
    write_tsv(mgmt.summary(folds), out.summary)
    write_tsv(table, out.holdout)
    mgmt.plot_roc(holdout, out.roc)
    log.info("holdout:\n%s", table.to_string(index=False))
