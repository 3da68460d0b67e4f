"""Benchmark: the mgmt study's data path and its results against the planted ceiling.

    .venv/bin/python benchmarks/mgmt.py [--patients 6] [--results results/mgmt]

Prints (1) the best achievable AUC per effect size, from the formula Phi(effect / sqrt 2) and
from 4000 draws of the generator's planted score; (2) seconds per patient of the phantom
(making and writing four DICOM series) and of the ingest (four conversions through the DICOM
stage and the paper's preprocessing) at the demo settings, on one core; (3) with ``--results``,
the holdout AUCs of a finished run beside the oracle on the same patients and the ceiling, and
the fold means. Nothing is asserted: the README's figures are read off here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml


def ceilings() -> None:
    from sklearn.metrics import roc_auc_score

    from voxflow.phantoms.mgmt import MGMTPhantomConfig, ceiling_auc, planted

    print("effect  ceiling Phi(d/sqrt2)  generator (4000 draws)")
    for effect in (0.0, 0.5, 1.0, 2.0, 3.0):
        cfg = MGMTPhantomConfig(effect=effect)
        rows = [planted(f"{i:05d}", 0, cfg) for i in range(4000)]
        y = [r["MGMT_value"] for r in rows]
        s = [r["necrotic_fraction"] for r in rows]
        print(f"{effect:6.1f}  {ceiling_auc(effect):20.3f}  {roc_auc_score(y, s):22.3f}")


def data_path(patients: int) -> None:
    from voxflow.io.dicom import dicom_to_nifti
    from voxflow.io.layouts.mgmt import SERIES, series_folder
    from voxflow.phantoms.brain import load_template
    from voxflow.phantoms.mgmt import MGMTPhantomConfig, cohort_ids, make_patient, write_patient
    from voxflow.studies.mgmt import preprocess_patient

    demo = yaml.safe_load(Path("config/config.yaml").read_text())["mgmt"]
    cfg = MGMTPhantomConfig.from_dict(demo["phantom"])
    template = load_template(cfg.voxel_mm)
    ids = [i for i in cohort_ids(max(patients, 8), 0, cfg) if i not in cfg.degenerate][:patients]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        files = 0
        for pid in ids:
            write_patient(make_patient(pid, 0, cfg, template), root, 0)
        t1 = time.perf_counter()
        for pid in ids:
            niftis = {}
            for s in SERIES:
                files += len(list(series_folder(root, pid, s).glob("*.dcm")))
                niftis[s] = root / pid / f"{s}.nii.gz"
                dicom_to_nifti(series_folder(root, pid, s), niftis[s])
            preprocess_patient(niftis, root / f"{pid}.npz", demo)
        t2 = time.perf_counter()
    n = len(ids)
    print(f"\n{n} demo patients, {files / n:.0f} DICOM files each (4 series)")
    print(f"phantom (make + write DICOM): {(t1 - t0) / n:.2f} s per patient")
    print(f"ingest (4 conversions + preprocessing): {(t2 - t1) / n:.2f} s per patient")


def results(folder: Path) -> None:
    from voxflow.phantoms.mgmt import ceiling_auc

    holdout = pd.read_csv(folder / "holdout.tsv", sep="\t")
    summary = pd.read_csv(folder / "summary.tsv", sep="\t")
    cfg = yaml.safe_load(Path("config/config.yaml").read_text())["mgmt"]["phantom"]
    ceiling = ceiling_auc(float(cfg["effect"]))
    print(f"\n{folder}: holdout (config effect {cfg['effect']}: ceiling AUC {ceiling:.3f})")
    print(holdout.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    oracle = holdout.set_index("model").auc.get("oracle", np.nan)
    for m in ("2d", "3d"):
        auc = holdout.set_index("model").auc[m]
        print(
            f"{m}: holdout AUC {auc:.3f}; ceiling - AUC {ceiling - auc:+.3f}; "
            f"oracle on these patients - AUC {oracle - auc:+.3f}"
        )
    auc = summary[summary.metric == "auc"].set_index("model")
    for m, row in auc.iterrows():
        print(f"{m}: fold AUC {row['mean']:.3f} +- {row['std']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=6)
    ap.add_argument("--results", type=Path, default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    ceilings()
    data_path(args.patients)
    if args.results:
        results(args.results)


if __name__ == "__main__":
    main()
