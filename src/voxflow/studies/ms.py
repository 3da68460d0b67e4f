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
from voxflow.io.images import Volume, check_finite, check_same_grid, read_image, write_nifti
from voxflow.io.layouts.ms import MSCase
from voxflow.preprocess.crop import bounding_box, crop_affine, foreground
from voxflow.preprocess.normalize import peak_normalise, zscore
from voxflow.seeding import rng

log = logging.getLogger(__name__)
MULTI = "multi"  # the multi-channel model (the paper's future work)


NORMALISERS = {"zscore": zscore, "peak": peak_normalise}


def preprocess_case(
    case: MSCase,
    out_dir: str | Path,
    margin: int = 2,
    spacing_mm: float | None = None,
    normalise: str = "peak",
) -> dict[str, Path]:
    """Optionally resample to ``spacing_mm`` (isotropic, anti-aliased), crop all channels and
    the mask to the head's bounding box and normalise each channel inside the head:
    ``zscore`` (the paper) or ``peak`` (relative to the white-matter peak; robust to the
    share of CSF and lesion, so phantoms and real scans share a scale)."""
    if normalise not in NORMALISERS:
        raise VoxflowError(f"ms.normalise: '{normalise}' not one of {sorted(NORMALISERS)}")
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
        vols = {ch: resample(v, spacing_mm, antialias=True) for ch, v in vols.items()}
        mask = resample(mask, spacing_mm, label=True)
        ref = next(iter(vols.values()))
    head = np.logical_or.reduce([foreground(v.data) for v in vols.values()])
    box = bounding_box(head, margin)
    affine = crop_affine(ref.affine, box)
    paths = {}
    for ch, v in vols.items():
        cropped = v.data[box]
        norm = NORMALISERS[normalise](cropped, head[box])
        paths[ch] = write_nifti(out_dir / f"{ch}.nii.gz", norm, affine)
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
    """TorchIO subjects of the case folders; a channel a case lacks (a real cohort without PD)
    is left out and fed as zeros by :func:`_input_tensor`."""
    import torchio as tio

    subjects = []
    for d in case_dirs:
        images = {
            ch: tio.ScalarImage(d / f"{ch}.nii.gz")
            for ch in channels
            if (d / f"{ch}.nii.gz").is_file()
        }
        if not images:
            raise VoxflowError(f"{d}: none of the channels {channels} is there")
        subjects.append(tio.Subject(case=d.name, label=tio.LabelMap(d / "mask.nii.gz"), **images))
    return subjects


def _input_tensor(batch_or_subject: Any, channels: list[str]):
    """The model input: the channels stacked in order; a missing one is zeros (the WM level of a
    peak-normalised image, the mean of a Z-scored one: no lesion information, as channel
    dropout taught the multi-channel model)."""
    import torch

    ref = batch_or_subject["label"]["data"]
    return torch.cat(
        [
            batch_or_subject[ch]["data"].float()
            if ch in batch_or_subject
            else torch.zeros_like(ref, dtype=torch.float32)
            for ch in channels
        ],
        dim=-4,
    )


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
    """Train one (model, channel) on patches (holding lesion with ``lesion_probability``, the
    lesion anywhere in the patch) with augmentation; ``multi`` with channel dropout."""
    import torchio as tio
    from torch.utils.data import DataLoader

    from voxflow.augment import (
        SAMPLING_MAP,
        build_augmentation,
        channel_dropout,
        foreground_sampling_map,
        patch_queue,
        preload,
    )
    from voxflow.train.loop import Metric, TrainConfig, Trainer
    from voxflow.train.losses import BCEDiceLoss, soft_dice

    chans = channels_of(channel, available)
    # patches hold a lesion with probability lesion_probability, anywhere in the patch
    radius = max(0, int(np.min(cfg["patch_size"])) // 2 - 1)
    sampling = foreground_sampling_map(radius)
    aug = build_augmentation(cfg["augment"])
    train_ds = tio.SubjectsDataset(
        preload(_subjects(train_dirs, chans)),
        transform=tio.Compose([aug, sampling]) if aug else sampling,
    )
    lesion_p = cfg.get("lesion_probability", 1.0)

    def queue(ds):
        size, n = cfg["patch_size"], cfg["samples_per_volume"]
        return patch_queue(ds, size, n, label_name=SAMPLING_MAP, lesion_probability=lesion_p)

    train_loader = DataLoader(queue(train_ds), batch_size=cfg["batch_size"], num_workers=0)
    val_ds = tio.SubjectsDataset(preload(_subjects(val_dirs, chans)), transform=sampling)
    val_loader = DataLoader(queue(val_ds), batch_size=cfg["batch_size"], num_workers=0)
    drop = cfg.get("channel_dropout", 0.0) if len(chans) > 1 else 0.0

    def batch(b):
        return channel_dropout(_input_tensor(b, chans), drop), b["label"]["data"].float()

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


def _predictions(
    model_name: str,
    channel: str,
    available: list[str],
    weights: Path,
    case_dirs: list[Path],
    cfg: dict[str, Any],
    device: str,
):
    """(TorchIO subject, sliding-window probabilities) of each case folder, one model."""
    from voxflow.train.device import select_device
    from voxflow.train.loop import load_weights

    chans = channels_of(channel, available)
    dev = select_device(device)
    model = load_weights(build_model(model_name, len(chans), cfg["model"]), weights, dev).to(dev)
    for subject in _subjects(case_dirs, chans):
        yield (
            subject,
            predict_volume(model, subject, chans, cfg["patch_size"], cfg["patch_overlap"], dev),
        )


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
    rows, preds = [], {}
    for subject, prob in _predictions(
        model_name, channel, available, weights, test_dirs, cfg, device
    ):
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


def _load_channel(d: Path, channel: str) -> tuple[np.ndarray, Volume]:
    """One preprocessed channel's array and the case's mask (a Volume: data, spacing, affine)."""
    return read_image(d / f"{channel}.nii.gz").data, read_image(d / "mask.nii.gz", dtype=None)


def tune_threshold(
    train_dirs: list[Path], channel: str, threshold_grid: np.ndarray | None = None
) -> dict[str, float]:
    """The global threshold of one normalised channel with the best mean Dice on the training
    cases: ``{"threshold": t, "sign": +1 (lesion >= t) or -1 (lesion <= t)}``. Candidates: by
    default 100 values evenly spread between the 0.01st and 99.99th percentiles of the
    training voxels, whatever the normalisation (lesions are the top or bottom few tenths of
    a percent, so evenly spread quantiles would step over them)."""
    train = [(x, m.data > 0) for x, m in (_load_channel(d, channel) for d in train_dirs)]
    if threshold_grid is None:
        pooled = np.concatenate([x.ravel() for x, _ in train])
        threshold_grid = np.linspace(*np.percentile(pooled, [0.01, 99.99]), 100)
    t, sign = max(
        ((t, sign) for t in threshold_grid for sign in (1, -1)),
        key=lambda ts: np.mean([dice(ts[1] * x >= ts[1] * ts[0], m) for x, m in train]),
    )
    log.info("threshold baseline %s: %s %.2f", channel, ">=" if sign > 0 else "<=", t)
    return {"threshold": float(t), "sign": int(sign)}


def apply_threshold(x: np.ndarray, rule: dict[str, float]) -> np.ndarray:
    """Binary lesion map (float32) of a tuned threshold rule."""
    return (rule["sign"] * x >= rule["sign"] * rule["threshold"]).astype(np.float32)


def threshold_baseline(
    train_dirs: list[Path],
    test_dirs: list[Path],
    channel: str,
    threshold_grid: np.ndarray | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Intensity thresholding of one normalised channel (hyper- or hypointense lesions), the
    threshold chosen for best Dice on the training cases; evaluated per test case. Returns the
    table and the tuned rule."""
    rule = tune_threshold(train_dirs, channel, threshold_grid)
    rows = []
    for d in test_dirs:
        x, mask = _load_channel(d, channel)
        rows.append(
            {
                "model": "threshold",
                "channel": channel,
                "case": d.name,
                **case_metrics(apply_threshold(x, rule), mask.data > 0, mask.spacing, 0.5),
            }
        )
    return pd.DataFrame(rows), rule


def native_metrics(
    prob: np.ndarray, affine: np.ndarray, native_mask: Path, threshold: float
) -> dict[str, float]:
    """Metrics on the cohort's own grid: ``prob`` (on the preprocessed grid ``affine``) is
    interpolated (linear) onto the native mask's voxels, thresholded and scored against the
    mask as the raters drew it, so resampling to the demo spacing costs what it really costs."""
    from voxflow.preprocess.resample import resample_to_grid

    truth = read_image(native_mask, dtype=None)
    up = resample_to_grid(prob, affine, truth.shape, truth.affine, order=1)
    return case_metrics(up, truth.data > 0, truth.spacing, threshold)


def real_check(
    runs: list[tuple[str, str, Path]],
    trained_channels: list[str],
    real_dirs: list[Path],
    native_masks: dict[str, Path],
    thresholds: dict[str, dict[str, float]],
    cfg: dict[str, Any],
    device: str,
) -> pd.DataFrame:
    """Phantom-trained models and phantom-tuned thresholds on a real cohort, scored on its own
    grid: one row per (model, channel, case) with the channels the case supplied. A
    single-channel model whose channel the cohort lacks is skipped (logged); the multi-channel
    model gets zeros for a missing channel."""
    rows = []

    def present(d: Path, chans: list[str]) -> list[str]:
        return [ch for ch in chans if (d / f"{ch}.nii.gz").is_file()]

    def row(model: str, channel: str, d: Path, used: list[str], metrics: dict) -> dict:
        return {
            "model": model,
            "channel": channel,
            "case": d.name,
            "channels_used": "+".join(used),
            **metrics,
        }

    for model_name, channel, weights in runs:
        chans = channels_of(channel, trained_channels)
        usable = [d for d in real_dirs if present(d, chans)]
        if len(usable) < len(real_dirs):
            log.info("%s %s: skipped on cases without %s", model_name, channel, chans)
        if not usable:
            continue
        predictions = _predictions(
            model_name, channel, trained_channels, weights, usable, cfg, device
        )
        for d, (subject, prob) in zip(usable, predictions, strict=True):
            affine = subject["label"].affine
            metrics = native_metrics(prob, affine, native_masks[d.name], cfg["threshold"])
            rows.append(row(model_name, channel, d, present(d, chans), metrics))
    for channel, rule in thresholds.items():
        for d in real_dirs:
            if not present(d, [channel]):
                continue
            x, mask = _load_channel(d, channel)
            binary = apply_threshold(x, rule)
            metrics = native_metrics(binary, mask.affine, native_masks[d.name], 0.5)
            rows.append(row("threshold", channel, d, [channel], metrics))
    if not rows:
        raise VoxflowError("ms real check: no model or threshold could run on the real cohort")
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
