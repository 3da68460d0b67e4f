"""Benchmark: the l3 demo's trained fold models on patients beyond the cohort, per decoding.

    .venv/bin/python benchmarks/l3_unseen.py [--results results/l3] [--smooth 1 3]

Needs a finished demo (``bash run.sh demo results/l3/summary.tsv``) and preprocessed patients
beyond its cohort, built with a larger cohort (a larger cohort does not change the first
patients), e.g. ``snakemake --cores 2 results/l3/slices/p021.npz ... --configfile
config/config.yaml more.yaml`` with ``l3: {phantom: {patients: 40}}`` in ``more.yaml``. Every
arm's fold models predict every such patient, and the mean |slice error| is printed per arm and
smoothing width of the decoding: an estimate independent of the cross-validation, on which the
decoding setting was not chosen.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import yaml

from voxflow.studies import l3
from voxflow.train.loop import load_weights

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--results", type=Path, default=REPO / "results" / "l3")
    ap.add_argument("--smooth", type=int, nargs="+", default=[1, 3])
    args = ap.parse_args()
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["l3"]
    n = cfg["phantom"]["patients"]
    unseen = sorted((args.results / "slices").glob("*.npz"))[n:]
    if not unseen:
        raise SystemExit(f"{args.results}/slices: no patient beyond the first {n}; build some")
    rows = []
    for arm in cfg["arms"]:
        for fold in range(cfg["folds"]):
            path = args.results / "train" / arm / f"fold{fold}" / "model.pt"
            model = load_weights(l3.build_model(cfg), path)
            probs = l3.predict(model, unseen, cfg["context_mm"])
            for smooth in args.smooth:
                decode = {**cfg["decode"], "smooth_slices": smooth}
                errors = l3.slice_errors(probs, unseen, arm, fold, decode)
                rows.append(errors.assign(smooth_slices=smooth))
    table = pd.concat(rows)
    print(f"{len(unseen)} patients beyond the cohort x {cfg['folds']} fold models per arm")
    stats = table.groupby(["arm", "smooth_slices"]).error_slices.agg(["mean", "std", "max"])
    print(stats.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
