"""Benchmark: the gwr own U-Net on the demo's preprocessed cohort, for config overrides.

    .venv/bin/python benchmarks/gwr_train.py [--set KEY=VALUE ...] [--threads 2]
        [--results results/gwr] [--workdir /tmp/gwr-bench]

Needs the demo's preprocessed cases and CT (run ``bash run.sh demo results/gwr/summary.tsv``
first). Settings are config/config.yaml's gwr block plus the overrides, e.g. ``--set
roi_mm=null --set patch_size=[64,64,16]`` (the whole head, patches), ``--set train.epochs=80``
or ``--set model.base_filters=16``. Trains on the workflow's training split, predicts the
training and validation patients onto their CT grids with and without test-time mirroring and
prints the training time and, per group, the Dice per landmark and the median
|GWR_pred - GWR_true|: the figures behind the demo preset in the README. Preprocessed patients
beyond the config's cohort (build them with ``snakemake results/gwr/preprocessed/p033/labels.nii.gz
...``; a larger cohort does not change the first patients) are scored too, as ``unseen``: a
larger held-out set than the demo's validation split.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import yaml
from _overrides import apply_overrides

from voxflow.logs import setup_logging
from voxflow.studies import gwr

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--model", default=None, help="default: the config's first own model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--results", type=Path, default=REPO / "results" / "gwr")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/gwr-bench"))
    args = ap.parse_args()
    setup_logging()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = apply_overrides(config["gwr"], args.set)
    model = args.model or next(m for m in cfg["models"] if m != "nnunet")
    pre = args.results / "preprocessed"
    found = sorted(d for d in pre.iterdir() if (d / "labels.nii.gz").is_file())
    n = cfg["phantom"]["patients"]
    cases, unseen = found[:n], found[n:]
    if len(cases) < n:
        raise SystemExit(f"{pre}: {len(cases)} preprocessed cases, {n} expected; run the demo")
    split = gwr.make_split([d.name for d in cases], config["seed"], cfg["val_fraction"])
    side = dict(zip(split.patient, split.split, strict=True))
    side.update({d.name: "unseen" for d in unseen})
    train = [d for d in cases if side[d.name] == "train"]
    val = [d for d in cases if side[d.name] == "val"]
    fp = {**gwr.intensity_fingerprint(train), **gwr.roi_fingerprint(train, cfg["roi_mm"])}
    t0 = time.perf_counter()
    res = gwr.train_model(
        model, train, val, fp, args.workdir / "train", cfg, config["seed"], "cpu", args.threads
    )
    t_train = time.perf_counter() - t0
    print(f"{model}: {len(train)} train / {len(val)} val patients, ROI {cfg['roi_mm']} mm")
    print(f"training: {len(res.history)} epochs in {t_train:.0f} s ({args.threads} threads)")
    scored = train + val + unseen
    cts = [args.results / "ct" / f"{d.name}.nii.gz" for d in scored]
    refs = [d / "reference.nii.gz" for d in scored]
    for mirror in ([], cfg["mirror_axes"]) if cfg["mirror_axes"] else ([],):
        preds = [args.workdir / f"pred{mirror}" / f"{d.name}.nii.gz" for d in scored]
        t0 = time.perf_counter()
        gwr.predict_cases(
            model, res.model_path, scored, cts, preds, fp, {**cfg, "mirror_axes": mirror}, "cpu"
        )
        t_pred = time.perf_counter() - t0
        names = [d.name for d in scored]
        dice, ratios = gwr.evaluate(model, names, side, cts, refs, preds, {}, 1.2)
        print(f"mirror {mirror} (prediction {t_pred:.0f} s):")
        for group, g in dice.groupby("split", sort=False):
            per = g.groupby("structure", sort=False).dice.mean()
            r = ratios[ratios.split == group]
            err = np.abs(r.gwr_pred - r.gwr_true)
            mean = g.groupby("patient").dice.mean().mean()
            print(
                f"  {group} (n={r.patient.nunique()}): Dice {mean:.3f} "
                f"({', '.join(f'{k} {v:.3f}' for k, v in per.items())}); "
                f"median |GWR error| {np.nanmedian(err):.4f}"
            )


if __name__ == "__main__":
    main()
