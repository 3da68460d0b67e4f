"""Rule mgmt_train: one model on one split (a CV fold or the final 80 % fit) through the shared
Trainer (resumes after a kill), its predictions on the held-out part and their confusion matrix."""

from pathlib import Path

import _voxflow  # noqa: F401  (voxflow on sys.path inside conda envs)

from voxflow.io.tables import read_tsv, write_tsv
from voxflow.logs import rule_logging
from voxflow.seeding import derive_seed
from voxflow.studies import mgmt
from voxflow.train.loop import run_fingerprint

snakemake = snakemake  # noqa: F821,PLW0127 (injected by Snakemake)

with rule_logging(snakemake.log[0]) as log:
    wc, p = snakemake.wildcards, snakemake.params
    splits = read_tsv(snakemake.input.splits, ["BraTS21ID", "MGMT_value", "role", "fold"])
    train_ids, test_ids = mgmt.split_ids(splits, wc.split)
    cases = mgmt.load_cases(snakemake.input.cases, splits)
    log.info(
        "%s %s: %d training, %d held-out patients",
        wc.mgmtmodel,
        wc.split,
        len(train_ids),
        len(test_ids),
    )
    model, _ = mgmt.train_model(
        wc.mgmtmodel,
        cases,
        train_ids,
        test_ids,
        p.cfg,
        derive_seed(p.seed, "mgmt", wc.mgmtmodel, wc.split),
        Path(snakemake.output.model).parent,
        p.device,
        snakemake.threads,
        run_fingerprint(
            [snakemake.input.splits, *mgmt.case_files(snakemake.input.cases)], [p.cfg, p.seed]
        ),
    )
    pred = mgmt.predict(model, cases, test_ids, wc.mgmtmodel)
    write_tsv(pred, snakemake.output.pred)
    title = f"{wc.mgmtmodel} {'holdout' if wc.split == 'final' else wc.split}"
    mgmt.plot_confusion(pred, title, snakemake.output.confusion)
    log.info("%s", mgmt.scores_metrics(pred))
