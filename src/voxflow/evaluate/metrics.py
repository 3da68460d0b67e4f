"""Evaluation metrics on NumPy arrays: overlap, surface distance, detection, regression, classes.

Conventions: masks are boolean-like arrays; ``spacing`` is the voxel size in mm per axis. When both
prediction and truth are empty, Dice and IoU are 1 (perfect agreement) and HD95 is 0; when only one
is empty, HD95 is ``inf``. These follow MONAI/nnU-Net reporting practice and are documented here so
tables can be read unambiguously.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from voxflow.lazy import lazy_import

ndimage = lazy_import("scipy.ndimage")  # voxflow.lazy: not at Snakemake's DAG build


def _binary(a: np.ndarray) -> np.ndarray:
    return np.asarray(a) > 0.5 if np.asarray(a).dtype.kind == "f" else np.asarray(a).astype(bool)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice similarity coefficient 2|P∩T| / (|P|+|T|)."""
    p, t = _binary(pred), _binary(truth)
    denom = int(p.sum()) + int(t.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(p, t).sum()) / denom


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union (Jaccard) |P∩T| / |P∪T|."""
    p, t = _binary(pred), _binary(truth)
    union = int(np.logical_or(p, t).sum())
    return 1.0 if union == 0 else int(np.logical_and(p, t).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3,) * mask.ndim), border_value=0)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: Sequence[float] | None = None) -> float:
    """Symmetric 95th-percentile Hausdorff distance between mask surfaces, in mm.

    The larger of the two directed 95th percentiles (as MONAI's ``compute_hausdorff_distance``
    with ``percentile=95``); distances from an exact Euclidean distance transform.
    """
    p, t = _binary(pred), _binary(truth)
    if not p.any() and not t.any():
        return 0.0
    if not p.any() or not t.any():
        return float("inf")
    spacing = tuple(spacing) if spacing is not None else (1.0,) * p.ndim
    sp, st = _surface(p), _surface(t)
    dist_to_t = ndimage.distance_transform_edt(~st, sampling=spacing)
    dist_to_p = ndimage.distance_transform_edt(~sp, sampling=spacing)
    return float(max(np.percentile(dist_to_t[sp], 95), np.percentile(dist_to_p[st], 95)))


def lesion_detection(
    pred: np.ndarray, truth: np.ndarray, min_overlap_voxels: int = 1
) -> dict[str, float]:
    """Lesion-wise detection: 26-connected components; a lesion counts if it overlaps the other.

    Returns TP (truth lesions hit), FN (truth lesions missed), FP (predicted lesions touching no
    truth lesion), precision, recall and F1 (F1 = 1 when there are no lesions on either side).
    """
    p, t = _binary(pred), _binary(truth)
    structure = np.ones((3,) * p.ndim)
    lt, nt = ndimage.label(t, structure)
    lp, np_ = ndimage.label(p, structure)
    hits_t = ndimage.sum_labels(p, lt, index=np.arange(1, nt + 1)) if nt else np.zeros(0)
    hits_p = ndimage.sum_labels(t, lp, index=np.arange(1, np_ + 1)) if np_ else np.zeros(0)
    tp = int(np.count_nonzero(hits_t >= min_overlap_voxels))
    fn = nt - tp
    fp = int(np.count_nonzero(hits_p < min_overlap_voxels))
    precision = (np_ - fp) / np_ if np_ else (1.0 if nt == 0 else 0.0)
    recall = tp / nt if nt else (1.0 if np_ == 0 else 0.0)
    f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Root-mean-square error, optionally inside ``mask``."""
    diff = np.asarray(pred, np.float64) - np.asarray(truth, np.float64)
    if mask is not None:
        diff = diff[_binary(mask)]
    return float(np.sqrt(np.mean(diff**2))) if diff.size else float("nan")


def classification_metrics(
    y_true: Sequence[int], y_score: Sequence[float], threshold: float = 0.5
) -> dict[str, float]:
    """Accuracy, precision, recall, F1, ROC AUC and confusion counts for a binary classifier.

    ``y_score`` are probabilities of the positive class; AUC is NaN when only one class occurs.
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=np.float64)
    y_pred = (y_score >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    auc = skm.roc_auc_score(y_true, y_score) if len(np.unique(y_true)) == 2 else float("nan")
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "f1": skm.f1_score(y_true, y_pred, zero_division=0),
        "auc": float(auc),
        "tn": int(tn),
        "fp": int(fp),
        "fn": int(fn),
        "tp": int(tp),
    }
