"""Study ``ms``: Residual 3D U-Net vs 3D U-Net for MS lesions (glue over the shared engine).

Stages (one function each, called by the thin workflow scripts):
``preprocess_case`` (crop to the head, Z-normalise each channel), ``make_split`` (subjects ->
train/val/test from the seed), ``train_model`` (TorchIO patches + the shared Trainer),
``evaluate_model`` (sliding-window inference, threshold, metrics per test subject),
``threshold_baseline`` and ``summarize`` (the paper's Table 2 layout: results/ms/dsc.tsv).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxflow.errors import VoxflowError
from voxflow.evaluate.metrics import dice, hd95, iou, lesion_detection
from voxflow.io.images import check_finite, check_same_grid, read_image, write_nifti
from voxflow.io.layouts.ms import MSCase
from voxflow.preprocess.crop import bounding_box, crop_affine, foreground
from voxflow.preprocess.normalize import zscore
from voxflow.seeding import rng

log = logging.getLogger(__name__)
MULTI = "multi"  # the multi-channel model (the paper's future work)


def preprocess_case(
    case: MSCase, out_dir: str | Path, margin: int = 2, spacing_mm: float | None = None
) -> dict[str, Path]:
    """Optionally resample to ``spacing_mm`` (isotropic), crop all channels and the mask to the
    head's bounding box and Z-normalise each channel (statistics inside the head)."""
    from voxflow.preprocess.resample import resample

    out_dir = Path(out_dir)
    vols = {ch: check_finite(read_image(p), ch) for ch, p in case.channels.items()}
    mask = read_image(case.mask, dtype=None)
    ref = next(iter(vols.values()))
    for v in [*vols.values(), mask]:
        check_same_grid(ref, v)
    values = np.unique(mask.data)
    if not set(values.tolist()) <= {0, 1}:
        raise VoxflowError(f"{case.mask}: lesion mask must be binary (0/1), has {values[:5]}")
    if spacing_mm:
        vols = {ch: resample(v, spacing_mm) for ch, v in vols.items()}
        mask = resample(mask, spacing_mm, label=True)
        ref = next(iter(vols.values()))
    head = np.logical_or.reduce([foreground(v.data) for v in vols.values()])
    box = bounding_box(head, margin)
    affine = crop_affine(ref.affine, box)
    paths = {}
    for ch, v in vols.items():
        cropped = v.data[box]
        paths[ch] = write_nifti(out_dir / f"{ch}.nii.gz", zscore(cropped, head[box]), affine)
    paths["mask"] = write_nifti(out_dir / "mask.nii.gz", mask.data[box].astype(np.uint8), affine)
    return paths


def make_split(cases: list[str], seed: int, fractions: dict[str, float]) -> pd.DataFrame:
    """Random subject-level split (train/val/test), at least one case in val and test."""
    n = len(cases)
    if n < 3:
        raise VoxflowError(f"ms: {n} case(s); a train/val/test split needs at least 3")
    cases = sorted(cases)
    order = rng(seed, "ms-split").permutation(n)
    n_test = max(1, round(fractions["test"] * n))
    n_val = max(1, round(fractions["val"] * n))
    split = np.array(["train"] * n, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    return pd.DataFrame({"case": cases, "split": split})


def _subjects(case_dirs: list[Path], channels: list[str]):
    import torchio as tio

    subjects = []
    for d in case_dirs:
        images = {ch: tio.ScalarImage(d / f"{ch}.nii.gz") for ch in channels}
        subjects.append(tio.Subject(case=d.name, label=tio.LabelMap(d / "mask.nii.gz"), **images))
    return subjects


def _input_tensor(batch_or_subject: Any, channels: list[str]):
    import torch

    return torch.cat([batch_or_subject[ch]["data"] for ch in channels], dim=-4).float()


def channels_of(channel: str, available: list[str]) -> list[str]:
    """The input channels of a model: one channel, or all available for ``multi``."""
    return list(available) if channel == MULTI else [channel]


def build_model(name: str, n_in: int, model_cfg: dict[str, Any]):
    from voxflow.models.unet3d import build_unet

    kwargs = {
        "in_channels": n_in,
        "base_filters": model_cfg["base_filters"],
        "depth": model_cfg["depth"],
    }
    if name == "resunet3d":
        kwargs["dropout"] = model_cfg["dropout"]
    return build_unet(name, **kwargs)


def train_model(
    model_name: str,
    channel: str,
    available: list[str],
    train_dirs: list[Path],
    val_dirs: list[Path],
    out_dir: Path,
    cfg: dict[str, Any],
    seed: int,
    device: str,
    threads: int,
    fingerprint: str = "",
):
    """Train one (model, channel) on lesion-centred patches with augmentation."""
    import torchio as tio
    from torch.utils.data import DataLoader

    from voxflow.augment import build_augmentation, patch_queue
    from voxflow.train.loop import Metric, TrainConfig, Trainer
    from voxflow.train.losses import BCEDiceLoss, soft_dice

    chans = channels_of(channel, available)
    aug = build_augmentation(cfg["augment"])
    train_ds = tio.SubjectsDataset(_subjects(train_dirs, chans), transform=aug)
    lesion_p = cfg.get("lesion_probability", 1.0)
    queue = patch_queue(
        train_ds, cfg["patch_size"], cfg["samples_per_volume"], lesion_probability=lesion_p
    )
    train_loader = DataLoader(queue, batch_size=cfg["batch_size"], num_workers=0)
    val_ds = tio.SubjectsDataset(_subjects(val_dirs, chans))
    val_queue = patch_queue(
        val_ds, cfg["patch_size"], cfg["samples_per_volume"], lesion_probability=lesion_p
    )
    val_loader = DataLoader(val_queue, batch_size=cfg["batch_size"], num_workers=0)

    def batch(b):
        return _input_tensor(b, chans), b["label"]["data"].float()

    def dice_metric(pred, target):
        return soft_dice((pred > 0).float(), target).mean(1)

    train_cfg = TrainConfig.from_dict(cfg["train"], seed=seed, device=device, threads=threads)
    trainer = Trainer(
        lambda: build_model(model_name, len(chans), cfg["model"]),
        BCEDiceLoss(),
        train_cfg,
        out_dir,
        metric=Metric("dice", dice_metric),
        batch_fn=batch,
        fingerprint=fingerprint,
    )
    return trainer.fit(train_loader, val_loader)


def predict_volume(
    model, subject, chans: list[str], patch: int, overlap: int, device, batch_size: int = 4
) -> np.ndarray:
    """Sliding-window lesion probabilities over a whole volume."""
    from voxflow.evaluate.inference import sliding_window

    def inputs(b):
        return _input_tensor(b, chans)

    return sliding_window(model, subject, inputs, patch, overlap, device, "sigmoid", batch_size)[0]


def case_metrics(prob: np.ndarray, truth: np.ndarray, spacing, threshold: float) -> dict:
    pred = prob >= threshold
    det = lesion_detection(pred, truth)
    return {
        "dsc": dice(pred, truth),
        "iou": iou(pred, truth),
        "hd95_mm": hd95(pred, truth, spacing),
        "lesion_f1": det["f1"],
    }


def evaluate_model(
    model_name: str,
    channel: str,
    available: list[str],
    weights: Path,
    test_dirs: list[Path],
    cfg: dict[str, Any],
    device: str,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per test subject DSC, IoU, HD95 (mm) and lesion-wise F1; also the predictions."""
    from voxflow.train.device import select_device
    from voxflow.train.loop import load_weights

    chans = channels_of(channel, available)
    dev = select_device(device)
    model = load_weights(build_model(model_name, len(chans), cfg["model"]), weights, dev).to(dev)
    rows, preds = [], {}
    for subject in _subjects(test_dirs, chans):
        prob = predict_volume(model, subject, chans, cfg["patch_size"], cfg["patch_overlap"], dev)
        truth = subject["label"].data[0].numpy() > 0
        spacing = subject["label"].spacing
        rows.append(
            {
                "model": model_name,
                "channel": channel,
                "case": subject["case"],
                **case_metrics(prob, truth, spacing, cfg["threshold"]),
            }
        )
        preds[subject["case"]] = prob
    return pd.DataFrame(rows), preds


def threshold_baseline(
    train_dirs: list[Path],
    test_dirs: list[Path],
    channel: str,
    threshold_grid: np.ndarray | None = None,
) -> pd.DataFrame:
    """Intensity thresholding of one Z-normalised channel (hyper- or hypointense lesions), the
    threshold chosen for best Dice on the training cases; evaluated per test case."""
    grid = np.linspace(-3, 5, 33) if threshold_grid is None else threshold_grid

    def load(d):
        return read_image(d / f"{channel}.nii.gz").data, read_image(d / "mask.nii.gz").data > 0

    train = [load(d) for d in train_dirs]
    best = max(
        ((t, sign) for t in grid for sign in (1, -1)),
        key=lambda ts: np.mean([dice(ts[1] * x >= ts[1] * ts[0], m) for x, m in train]),
    )
    rows = []
    for d in test_dirs:
        x, m = load(d)
        prob = (best[1] * x >= best[1] * best[0]).astype(np.float32)
        spacing = read_image(d / "mask.nii.gz").spacing
        rows.append(
            {
                "model": "threshold",
                "channel": channel,
                "case": d.name,
                **case_metrics(prob, m, spacing, 0.5),
            }
        )
    log.info("threshold baseline %s: %s %.2f", channel, ">=" if best[1] > 0 else "<=", best[0])
    return pd.DataFrame(rows)


def summarize(per_case: pd.DataFrame) -> pd.DataFrame:
    """One row per (model, channel): n_test, dsc, mean_iou, hd95_mm, lesion_f1 (means)."""
    g = per_case.groupby(["model", "channel"], sort=False)
    out = g.agg(
        n_test=("case", "count"),
        dsc=("dsc", "mean"),
        mean_iou=("iou", "mean"),
        hd95_mm=(
            "hd95_mm",
            lambda s: float(np.mean(s[np.isfinite(s)])) if np.isfinite(s).any() else float("inf"),
        ),
        lesion_f1=("lesion_f1", "mean"),
    ).reset_index()
    return out
