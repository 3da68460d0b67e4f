"""Benchmark: the gwr own U-Net on the demo's preprocessed cohort, for config overrides.

    .venv/bin/python benchmarks/gwr_train.py [--set KEY=VALUE ...] [--threads 2]
        [--results results/gwr] [--workdir /tmp/gwr-bench]

Needs the demo's preprocessed cases and CT (run ``bash run.sh demo results/gwr/summary.tsv``
first). Settings are config/config.yaml's gwr block plus the overrides, e.g. ``--set
roi_mm=null --set patch_size=[64,64,16]`` (the whole head, patches), ``--set train.epochs=80``
or ``--set model.base_filters=16``. Trains on the workflow's training split, then predicts the
validation patients onto their CT grid with and without test-time mirroring and prints the
training time, the validation Dice per landmark and the median |GWR_pred - GWR_true|: the
figures behind the demo preset in the README.
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
    cases = sorted(d for d in pre.iterdir() if (d / "labels.nii.gz").is_file())
    if not cases:
        raise SystemExit(f"{pre}: no preprocessed cases; run the gwr demo first")
    split = gwr.make_split([d.name for d in cases], config["seed"], cfg["val_fraction"])
    side = dict(zip(split.patient, split.split, strict=True))
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
    cts = [args.results / "ct" / f"{d.name}.nii.gz" for d in val]
    refs = [d / "reference.nii.gz" for d in val]
    for mirror in ([], cfg["mirror_axes"]) if cfg["mirror_axes"] else ([],):
        preds = [args.workdir / f"pred{mirror}" / f"{d.name}.nii.gz" for d in val]
        t0 = time.perf_counter()
        gwr.predict_cases(
            model, res.model_path, val, cts, preds, fp, {**cfg, "mirror_axes": mirror}, "cpu"
        )
        t_pred = time.perf_counter() - t0
        dice, ratios = gwr.evaluate(model, [d.name for d in val], side, cts, refs, preds, {}, 1.2)
        per = dice.groupby("structure", sort=False).dice.mean()
        err = np.abs(ratios.gwr_pred - ratios.gwr_true)
        print(
            f"mirror {mirror}: val Dice {dice.groupby('patient').dice.mean().mean():.3f} "
            f"({', '.join(f'{k} {v:.3f}' for k, v in per.items())}); "
            f"median |GWR error| {np.median(err):.4f}; prediction {t_pred:.0f} s"
        )


if __name__ == "__main__":
    main()
