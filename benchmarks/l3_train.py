"""Benchmark: one l3 design trained and scored on cross-validation folds, without tuning.

    .venv/bin/python benchmarks/l3_train.py [--set KEY=VALUE ...] [--design KEY=VALUE ...]
        [--folds 0 1 2] [--threads 2] [--results results/l3] [--workdir /tmp/l3-bench]

Needs the demo's preprocessed slices (``bash run.sh demo results/l3/summary.tsv`` first).
Settings are config/config.yaml's l3 block plus ``--set`` overrides (e.g. ``--set
train.epochs=8``; a different ``image_size`` needs the slices preprocessed again); the design is
``--design`` values over a fixed default (lr 1e-3, L2 1e-4, batch 16, threshold 6 global-l2norm,
over-sampling 0.25, class weight 1). Per fold: trains on the fold's training patients, then
prints the training time, per-slice F1 and the mean |slice error| of the decoded L3 slice on
its test patients — what the tuning's trials cost and reach, for choosing the demo preset.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import yaml
from _overrides import apply_overrides

from voxflow.logs import setup_logging
from voxflow.studies import l3

REPO = Path(__file__).resolve().parents[1]
DESIGN = {
    "lr": 1e-3,
    "l2": 1e-4,
    "batch_size": 16,
    "grad_threshold": 6,
    "grad_method": "global-l2norm",
    "oversampling": 0.25,
    "class_weight": 1.0,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--design", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--folds", type=int, nargs="*", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=REPO / "results" / "l3")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/l3-bench"))
    args = ap.parse_args()
    setup_logging()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = apply_overrides(config["l3"], args.set)
    design = apply_overrides(dict(DESIGN), args.design)
    slices = sorted((args.results / "slices").glob("*.npz"))
    n = cfg["phantom"]["patients"]
    if len(slices) < n:
        raise SystemExit(f"{args.results}/slices: {len(slices)} cases, {n} expected; run the demo")
    folds = l3.make_folds([p.stem for p in slices[:n]], config["seed"], cfg["folds"])
    by_name = {p.stem: p for p in slices}
    shutil.rmtree(args.workdir, ignore_errors=True)  # never resume another run's checkpoint
    print(f"design {design}")
    total = []
    for fold in args.folds if args.folds is not None else range(cfg["folds"]):
        train = [by_name[p] for p in folds.patient[folds.fold != fold]]
        test = [by_name[p] for p in folds.patient[folds.fold == fold]]
        t0 = time.perf_counter()
        model, result = l3.train_classifier(
            design,
            train,
            None,
            cfg,
            l3.fold_seed(config["seed"], "proposed", fold),
            args.workdir / f"fold{fold}",
            "cpu",
            args.threads,
        )
        seconds = time.perf_counter() - t0
        probs = l3.predict(model, test, cfg.get("context_mm", [0.0]))
        f1 = l3.f1(probs, test, cfg["decode"]["threshold"])
        err = l3.slice_errors(probs, test, "bench", fold, cfg["decode"])
        total.append(err)
        print(
            f"fold {fold}: {len(train)} train / {len(test)} test patients, "
            f"{len(result.history)} epochs in {seconds:.0f} s; test F1 {f1:.3f}, "
            f"|slice error| {err.error_slices.mean():.2f} (max {err.error_slices.max():.1f}): "
            + " ".join(f"{e:g}" for e in err.error_slices)
        )
    import pandas as pd

    s = l3.summarize(pd.concat(total))
    print(s.to_string(index=False))


if __name__ == "__main__":
    main()
