"""One ms (model, channel) run on demo phantoms: wall time and test DSC vs the threshold baseline.

    .venv/bin/python benchmarks/ms_single_run.py [--subjects 20] [--model resunet3d]
        [--channel flair] [--epochs 10] [--workdir /tmp/ms-bench]

Settings are config/config.yaml's ms demo block (3 mm phantoms, 32^3 patches). Prints the phantom
and preprocessing time, the training time, and per test subject the network's and the
threshold baseline's metrics. Used to tune the demo preset (issue 4).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml
from _ms_cohort import demo_cohort
from _overrides import apply_overrides

from voxflow.logs import setup_logging
from voxflow.phantoms.ms import CHANNELS
from voxflow.studies import ms

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--model", default="resunet3d")
    ap.add_argument("--channel", default="flair")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--voxel-mm", type=float, default=None, help="default: the config's")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override an ms setting, e.g. --set patch_size=24 --set train.lr=0.001",
    )
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ms-bench"))
    args = ap.parse_args()
    setup_logging()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = {**config["ms"], "threshold": 0.5}
    cfg["train"] = {**cfg["train"], "epochs": args.epochs}
    if args.patience is not None:
        cfg["train"]["patience"] = args.patience
    apply_overrides(cfg, args.set)
    voxel = args.voxel_mm or config["brain_phantom"]["voxel_mm"]
    t0 = time.perf_counter()
    cases = demo_cohort(args.workdir, args.subjects, config["seed"], voxel)
    t_data = time.perf_counter() - t0
    fractions = cfg.get("split", {"train": 0.8, "val": 0.1, "test": 0.1})
    split = ms.make_split([d.name for d in cases], config["seed"], fractions)
    by_name = {d.name: d for d in cases}

    def dirs(s: str) -> list[Path]:
        return [by_name[c] for c in split.loc[split.split == s, "case"]]

    t0 = time.perf_counter()
    res = ms.train_model(
        args.model,
        args.channel,
        list(CHANNELS),
        dirs("train"),
        dirs("val"),
        args.workdir / "train",
        cfg,
        config["seed"],
        "cpu",
        args.threads,
    )
    t_train = time.perf_counter() - t0
    net, _ = ms.evaluate_model(
        args.model, args.channel, list(CHANNELS), res.model_path, dirs("test"), cfg, "cpu"
    )
    base = ms.threshold_baseline(dirs("train"), dirs("test"), args.channel)
    print(f"phantoms + preprocessing ({args.subjects} subjects, {voxel} mm): {t_data:.1f} s")
    print(f"training {args.model} {args.channel}, {args.epochs} epochs: {t_train:.1f} s")
    cols = ["model", "case", "dsc", "iou", "hd95_mm", "lesion_f1"]
    print(net[cols].to_string(index=False))
    print(base[cols].to_string(index=False))


if __name__ == "__main__":
    main()
