"""One ms (model, channel) run on demo phantoms: wall time and test DSC vs the threshold baseline.

    .venv/bin/python benchmarks/ms_single_run.py [--subjects 20] [--model resunet3d]
        [--channel flair] [--epochs 10] [--workdir /tmp/ms-bench] [--cohort DIR] [--real DIR]

Settings are config/config.yaml's ms demo block (3 mm phantoms, 32^3 patches). Prints the phantom
and preprocessing time, the training time, and per test subject the network's and the
threshold baseline's metrics; with ``--real`` (an open_ms_data folder, e.g.
../shared/data/ms/open_ms_data) also both on the real cases, scored on their own grid (the
``ms_real`` rule's code). Phantoms are cached under ``--cohort`` (default: the work folder), so
several runs can share them. Used to tune the demo preset (issues 4 and 17).
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


def real_cases(root: Path, out: Path, voxel_mm: float) -> list[tuple[Path, Path]]:
    """open_ms_data cases preprocessed at the phantoms' voxel size: (folder, native mask)."""
    from voxflow.io.layouts.ms import read_cohort

    done = []
    for case in read_cohort("open_ms_data", root):
        if not (out / case.case / "mask.nii.gz").is_file():
            ms.preprocess_case(case, out / case.case, spacing_mm=voxel_mm)
        done.append((out / case.case, case.mask))
    return done


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
    ap.add_argument("--cohort", type=Path, default=None, help="phantom cache; default workdir")
    ap.add_argument("--real", type=Path, default=None, help="an open_ms_data root")
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
    cases = demo_cohort(args.cohort or args.workdir, args.subjects, config["seed"], voxel)
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
    single = args.channel != ms.MULTI
    if single:
        base, rule = ms.threshold_baseline(dirs("train"), dirs("test"), args.channel)
    print(f"phantoms + preprocessing ({args.subjects} subjects, {voxel} mm): {t_data:.1f} s")
    print(f"training {args.model} {args.channel}, {args.epochs} epochs: {t_train:.1f} s")
    cols = ["model", "case", "dsc", "iou", "hd95_mm", "lesion_f1"]
    print(net[cols].to_string(index=False))
    if single:
        print(base[cols].to_string(index=False))
    if args.real:
        real = real_cases(args.real, args.workdir / "real", voxel)
        table = ms.real_check(
            [(args.model, args.channel, res.model_path)],
            list(CHANNELS),
            [d for d, _ in real],
            {d.name: m for d, m in real},
            {args.channel: rule} if single else {},
            cfg,
            "cpu",
        )
        print(
            table[["model", "channel", "case", "channels_used", *cols[2:]]].to_string(index=False)
        )


if __name__ == "__main__":
    main()
