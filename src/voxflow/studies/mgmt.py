"""Study ``mgmt``: MGMT promoter methylation from mpMRI, a 2D and a 3D ResNet, validated as the
paper did (../shared/specs/mgmt.md).

Stages (one function each, called by the thin workflow scripts):

- ``preprocess_patient``: the converted series (NIfTI from the DICOM stage, slices already
  ordered by ImagePositionPatient, so reversed or shuffled stacks are in order) -> the 3D model's
  input and the 2D model's slices, in one ``.npz`` per patient. **3D, mode ``paper``**: min-max
  to [0, 1], then the volume resized to ``size``³ as stored (the longest axis cut into ``size``
  sections, each section resized to ``size``²; the paper notes the aspect-ratio distortion).
  **3D, mode ``resample``** (beyond the paper): reoriented to RAS, resampled to an isotropic
  ``spacing_mm`` and cropped/padded to ``size``³ about the brain's centre, so every patient has
  the same orientation and scale whatever the acquisition plane. **2D**: the min-max normalised
  volume's acquired slices, blank slices dropped, ``slices_2d`` of them evenly spaced (0 = all),
  each resized to ``image_size_2d``² (grey, repeated to 3 channels when batched).
- ``make_splits``: 80/20 stratified train/holdout (seeded), then ``StratifiedKFold(n_splits=5,
  shuffle=True, random_state=42)`` on the 80 %, exactly as the paper.
- ``train_model``: the shared Trainer (Adam, cross-entropy over 2 classes, a fixed number of
  epochs, the last epoch's model kept: no early stopping or model choice on the validation part,
  which is what the fold is scored on).
- ``predict``: the patient's score is P(methylated): the 3D model's softmax, or for the 2D model
  **the mean of its slices' softmax probabilities** (the stated aggregation rule).
- ``fold_table`` / ``summary`` / ``holdout_table``: Accuracy, Precision, Recall, F1 at a 0.5
  threshold and ROC AUC per fold, mean ± SD over folds, the holdout with a bootstrap 95 % AUC
  interval, and for phantoms the Bayes-optimal score on the planted signal (``oracle``).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import read_npz, write_npz
from voxflow.io.images import check_finite, read_image

log = logging.getLogger(__name__)

MODELS = ("2d", "3d")
METRICS = ("accuracy", "precision", "recall", "f1", "auc")


# ---- ingest ---------------------------------------------------------------------------------
def shard_of(pid: str, shards: int) -> int:
    """Stable shard of a patient (CRC32 of its id): adding patients moves no one."""
    return zlib.crc32(pid.encode()) % shards


def minmax(data: np.ndarray, where: str | Path) -> np.ndarray:
    """``data`` scaled to [0, 1]; a blank (constant) volume is an error naming ``where``."""
    lo, hi = float(np.min(data)), float(np.max(data))
    if hi <= lo:
        raise input_error(where, f"blank series (every voxel is {lo:g})", "Exclude the patient")
    return ((data - lo) / (hi - lo)).astype(np.float32)


def paper_volume(data: np.ndarray, size: int) -> np.ndarray:
    """The paper's 3D input: each axis resized to ``size`` as stored (data already min-maxed)."""
    from voxflow.preprocess.resample import resize_volume

    return resize_volume(data, (size,) * 3)


def resampled_volume(data: np.ndarray, affine: np.ndarray, size: int, spacing_mm: float):
    """RAS-reoriented, ``spacing_mm`` isotropic, ``size``³ about the foreground's centre."""
    import nibabel as nib

    from voxflow.io.images import Volume
    from voxflow.preprocess.crop import centred_box, crop_padded
    from voxflow.preprocess.resample import resample

    ornt = nib.orientations.io_orientation(affine)
    affine = affine @ nib.orientations.inv_ornt_aff(ornt, data.shape)  # the stored shape
    data = nib.orientations.apply_orientation(data, ornt)
    vol = resample(Volume(np.ascontiguousarray(data, np.float32), affine), spacing_mm)
    fg = np.argwhere(vol.data > 0.1)
    centre = fg.mean(axis=0) if len(fg) else (np.asarray(vol.data.shape) - 1) / 2
    box = centred_box(np.round(centre).astype(int), [size] * 3)
    return crop_padded(vol.data, box, fill=0.0).astype(np.float32)


def slices_2d(data: np.ndarray, n: int, size: int) -> np.ndarray:
    """(k, size, size): the acquired slices (last axis) that are not blank, ``n`` evenly spaced
    (0 = all), resized; ``data`` already min-maxed."""
    from voxflow.preprocess.resample import resize_volume

    stack = np.moveaxis(data, -1, 0)
    keep = np.flatnonzero(stack.reshape(len(stack), -1).max(axis=1) > 0)
    if len(keep) == 0:
        raise VoxflowError("every slice is blank")
    if n and len(keep) > n:
        keep = keep[np.round(np.linspace(0, len(keep) - 1, n)).astype(int)]
    return resize_volume(stack[keep], (len(keep), size, size))  # scipy: no torch to ingest


def preprocess_patient(
    niftis: Mapping[str, str | Path], out_path: str | Path, cfg: Mapping[str, Any]
) -> dict[str, Any]:
    """One patient's ``.npz``: ``volume`` (C, size, size, size) from ``cfg['series']`` and
    ``slices`` (k, s, s) from ``cfg['series_2d']``."""
    pre = cfg["preprocess"]
    series = [cfg["series"]] if isinstance(cfg["series"], str) else list(cfg["series"])
    if pre["mode"] not in ("paper", "resample"):
        raise VoxflowError(f"mgmt.preprocess.mode: '{pre['mode']}' not one of paper, resample")
    arrays: dict[str, np.ndarray] = {}
    channels = []
    for name in dict.fromkeys([*series, cfg["series_2d"]]):
        path = niftis[name]
        vol = check_finite(read_image(path), str(path))
        if vol.data.ndim != 3:
            raise input_error(path, f"needs a 3D volume, got shape {vol.data.shape}")
        data = minmax(vol.data, path)
        if name in series:
            if pre["mode"] == "paper":
                channels.append(paper_volume(data, int(pre["size"])))
            else:
                channels.append(
                    resampled_volume(data, vol.affine, int(pre["size"]), float(pre["spacing_mm"]))
                )
        if name == cfg["series_2d"]:
            try:
                arrays["slices"] = slices_2d(data, int(pre["slices_2d"]), int(pre["image_size_2d"]))
            except VoxflowError as err:
                raise input_error(path, str(err)) from None
    arrays["volume"] = np.stack(channels)
    write_npz(out_path, arrays)
    return {"volume": arrays["volume"].shape, "slices": arrays["slices"].shape}


def load_case(path: str | Path) -> dict[str, np.ndarray]:
    """A preprocessed patient (see :func:`preprocess_patient`)."""
    return read_npz(path, "Run the mgmt_ingest rule")


def case_files(case_dirs: Sequence[str | Path]) -> list[Path]:
    """The preprocessed patients (``<id>.npz``) of the ingest shards, sorted by id."""
    return sorted((f for d in case_dirs for f in Path(d).glob("*.npz")), key=lambda f: f.stem)


def load_cases(case_dirs: Sequence[str | Path], splits: pd.DataFrame) -> dict[str, dict]:
    """{id: arrays + ``label``} of the patients in ``splits``; a patient without a preprocessed
    file is an error naming it."""
    files = {f.stem: f for f in case_files(case_dirs)}
    cases = {}
    for pid, label in zip(
        splits["BraTS21ID"].astype(str).str.zfill(5), splits["MGMT_value"], strict=True
    ):
        if pid not in files:
            raise input_error(
                ", ".join(map(str, case_dirs)), f"patient {pid} was not ingested", "Rerun ingest"
            )
        cases[pid] = {**load_case(files[pid]), "label": int(label)}
    return cases


# ---- splits ---------------------------------------------------------------------------------
def make_splits(
    labels: Mapping[str, int], seed: int, holdout: float, folds: int, random_state: int
) -> pd.DataFrame:
    """``BraTS21ID MGMT_value role fold``: role ``holdout`` (fold -1) or ``train`` (fold 0..)."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    ids = sorted(labels)
    y = np.array([labels[i] for i in ids])
    counts = np.bincount(y, minlength=2)
    if counts.min() < folds + 2:
        raise VoxflowError(
            f"mgmt: {counts.tolist()} patients per class (unmethylated, methylated) are too few "
            f"for a stratified holdout and {folds} folds"
        )
    train, test = train_test_split(ids, test_size=holdout, stratify=y, random_state=seed)
    fold = dict.fromkeys(test, -1)
    ytr = np.array([labels[i] for i in train])
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    for k, (_, val) in enumerate(skf.split(np.zeros(len(train)), ytr)):
        fold.update({train[i]: k for i in val})
    rows = [
        {"BraTS21ID": i, "MGMT_value": labels[i], "role": "holdout" if fold[i] < 0 else "train"}
        | {"fold": fold[i]}
        for i in ids
    ]
    return pd.DataFrame(rows)


def split_ids(splits: pd.DataFrame, split: str) -> tuple[list[str], list[str]]:
    """(training ids, evaluation ids) of ``split``: ``fold<k>`` (the other folds / fold k) or
    ``final`` (all of the 80 % / the holdout)."""
    ids = splits["BraTS21ID"].astype(str).str.zfill(5)
    role, fold = splits["role"], splits["fold"].astype(int)
    if split == "final":
        return ids[role == "train"].tolist(), ids[role == "holdout"].tolist()
    if not split.startswith("fold") or not split[4:].isdigit():
        raise VoxflowError(f"mgmt: split '{split}' is not fold<k> or final")
    k = int(split[4:])
    if k not in set(fold):
        raise VoxflowError(f"mgmt: {split} does not exist (folds {sorted(set(fold) - {-1})})")
    train = (role == "train") & (fold != k)
    return ids[train].tolist(), ids[fold == k].tolist()


# ---- models ---------------------------------------------------------------------------------
def build_model(kind: str, model_cfg: Mapping[str, Any], in_channels: int):
    """The 2D (3 input channels, grey repeated) or 3D ResNet with 2 output logits."""
    from voxflow.models.resnet import build_resnet

    if kind not in MODELS:
        raise VoxflowError(f"mgmt: model '{kind}' not one of {MODELS}")
    return build_resnet(
        int(model_cfg["depth"]),
        2 if kind == "2d" else 3,
        3 if kind == "2d" else in_channels,
        2,
        float(model_cfg["widen_factor"]),
    )


def stack(cases: Mapping[str, Mapping[str, np.ndarray]], ids: Sequence[str], kind: str):
    """Inputs, labels and the patient index of each sample (the 2D model: one per slice)."""
    import torch

    if kind == "3d":
        x = np.stack([cases[i]["volume"] for i in ids])
        owner = np.arange(len(ids))
    else:
        per = [cases[i]["slices"] for i in ids]
        x = np.concatenate(per)[:, None]
        owner = np.repeat(np.arange(len(ids)), [len(p) for p in per])
    y = np.array([int(cases[i]["label"]) for i in ids])[owner]
    return torch.from_numpy(x), torch.from_numpy(y), owner


def loader(x, y, batch_size: int, flip: float = 0.0, shuffle: bool = True):
    """Batches; each training sample flipped along each spatial axis with probability ``flip``
    (torch's global RNG, reseeded by the trainer each epoch)."""
    import torch

    from voxflow.augment import random_flips

    class Samples(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int):
            return (random_flips(x[i], flip) if flip > 0 else x[i]), y[i]

    drop = shuffle and len(x) > batch_size  # a batch of one breaks batch norm
    return torch.utils.data.DataLoader(
        Samples(), batch_size=batch_size, shuffle=shuffle, drop_last=drop
    )


def _grey_to_rgb(x):
    """2D slices (B, 1, H, W) repeated to 3 channels; 3D volumes unchanged."""
    return x.expand(-1, 3, -1, -1) if x.dim() == 4 else x


def _rgb_batch(batch):
    x, y = batch
    return _grey_to_rgb(x), y


def train_model(
    kind: str,
    cases: Mapping[str, Mapping[str, np.ndarray]],
    train_ids: Sequence[str],
    val_ids: Sequence[str],
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    device: str = "cpu",
    threads: int = 1,
    fingerprint: str = "",
):
    """Train one model on ``train_ids``; ``val_ids``' loss is logged per epoch, never used to
    choose anything (the last epoch's model is kept)."""
    import torch

    from voxflow.train.loop import TrainConfig, Trainer

    model_cfg = cfg["models"][kind]
    x, y, _ = stack(cases, train_ids, kind)
    xv, yv, _ = stack(cases, val_ids, kind)
    tcfg = TrainConfig.from_dict(
        dict(cfg["train"]), patience=0, keep="last", seed=seed, device=device, threads=threads
    )
    trainer = Trainer(
        lambda: build_model(kind, model_cfg, x.shape[1]),
        torch.nn.CrossEntropyLoss(),
        tcfg,
        out_dir,
        batch_fn=_rgb_batch,
        fingerprint=fingerprint,
    )
    batch = int(model_cfg["batch_size"])
    flip = float(cfg.get("augment", {}).get("flip", 0.0))
    result = trainer.fit(loader(x, y, batch, flip), loader(xv, yv, batch, shuffle=False))
    return trainer.model, result


def predict(model, cases: Mapping[str, Mapping[str, np.ndarray]], ids: Sequence[str], kind: str):
    """``BraTS21ID MGMT_value score`` with score = P(methylated) (2D: mean over slices)."""
    import torch

    x, y, owner = stack(cases, ids, kind)
    device = next(model.parameters()).device
    model.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(x), 64):
            xb = _grey_to_rgb(x[i : i + 64].to(device))
            probs.append(torch.softmax(model(xb).float(), dim=1)[:, 1].cpu())
    p = torch.cat(probs).numpy().astype(np.float64)
    score = np.bincount(owner, weights=p) / np.bincount(owner)
    labels = [int(cases[i]["label"]) for i in ids]
    return pd.DataFrame({"BraTS21ID": list(ids), "MGMT_value": labels, "score": score})


# ---- evaluation -----------------------------------------------------------------------------
def scores_metrics(pred: pd.DataFrame, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy, precision, recall, F1 (at ``threshold``), AUC and confusion counts."""
    from voxflow.evaluate.metrics import classification_metrics

    return classification_metrics(pred["MGMT_value"], pred["score"], threshold)


def bootstrap_auc(
    pred: pd.DataFrame, seed: int, n: int = 2000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the AUC (patients resampled, seeded); resamples with
    one class only are skipped."""
    from sklearn.metrics import roc_auc_score

    y, s = pred["MGMT_value"].to_numpy(), pred["score"].to_numpy()
    g = np.random.default_rng(seed)
    aucs = []
    for _ in range(n):
        i = g.integers(0, len(y), len(y))
        if y[i].min() != y[i].max():
            aucs.append(roc_auc_score(y[i], s[i]))
    if not aucs:
        return float("nan"), float("nan")
    lo, hi = np.quantile(aucs, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def plot_confusion(pred: pd.DataFrame, title: str, path: str | Path) -> Path:
    """The confusion matrix (counts, not normalised) at the 0.5 threshold, as sklearn draws it."""
    from sklearn.metrics import ConfusionMatrixDisplay

    from voxflow.evaluate.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
    ConfusionMatrixDisplay.from_predictions(
        pred["MGMT_value"],
        (pred["score"] >= 0.5).astype(int),
        labels=[0, 1],
        display_labels=["unmethylated", "methylated"],
        ax=ax,
        colorbar=False,
    )
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def fold_table(preds: Mapping[tuple[str, int], pd.DataFrame]) -> pd.DataFrame:
    """``model fold accuracy precision recall f1 auc`` from {(model, fold): predictions}."""
    rows = [
        {"model": m, "fold": k, **scores_metrics(p)}  # the columns keep METRICS
        for (m, k), p in sorted(preds.items())
    ]
    return pd.DataFrame(rows, columns=["model", "fold", *METRICS])


def summary(folds: pd.DataFrame) -> pd.DataFrame:
    """``model metric mean std`` over folds (sample SD, as the paper's tables)."""
    rows = []
    for m, df in folds.groupby("model", sort=True):
        for c in METRICS:
            rows.append({"model": m, "metric": c, "mean": df[c].mean(), "std": df[c].std(ddof=1)})
    return pd.DataFrame(rows, columns=["model", "metric", "mean", "std"])


def oracle_predictions(planted: pd.DataFrame, ids: Sequence[str], effect: float) -> pd.DataFrame:
    """The Bayes-optimal score on the planted signal: P(methylated | s) for s ~ N(effect * y, 1)
    and prior 0.5, i.e. sigmoid(effect * (s - effect / 2))."""
    p = planted.assign(BraTS21ID=planted["BraTS21ID"].astype(str).str.zfill(5))
    p = p.set_index("BraTS21ID").loc[list(ids)]
    score = 1 / (1 + np.exp(-effect * (p["score"].to_numpy() - effect / 2)))
    return pd.DataFrame(
        {"BraTS21ID": list(ids), "MGMT_value": p["MGMT_value"].to_numpy(), "score": score}
    )


def holdout_table(preds: Mapping[str, pd.DataFrame], seed: int, n_boot: int) -> pd.DataFrame:
    """``model accuracy precision recall f1 auc auc_low auc_high`` on the holdout."""
    rows = []
    for m, p in preds.items():
        lo, hi = bootstrap_auc(p, seed, n_boot)
        rows.append({"model": m, **scores_metrics(p), "auc_low": lo, "auc_high": hi})
    return pd.DataFrame(rows, columns=["model", *METRICS, "auc_low", "auc_high"])


def plot_roc(preds: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """ROC curves of the holdout predictions (one line per model, AUC in the legend)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    from voxflow.evaluate.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.2, 4.0))
    for m, p in preds.items():
        fpr, tpr, _ = roc_curve(p["MGMT_value"], p["score"])
        auc = roc_auc_score(p["MGMT_value"], p["score"])
        ax.plot(fpr, tpr, ls="--" if m == "oracle" else "-", label=f"{m} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="holdout ROC")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)
