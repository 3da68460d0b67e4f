import numpy as np
import pytest
import torch
from monai.metrics import compute_hausdorff_distance

from voxflow.evaluate.metrics import (
    classification_metrics,
    dice,
    hd95,
    iou,
    lesion_detection,
    rmse,
)


def _ball(shape, centre, r):
    g = np.indices(shape).astype(float)
    return sum((g[i] - centre[i]) ** 2 for i in range(3)) <= r**2


def test_dice_iou_known_values():
    a = np.zeros((10, 10, 10), bool)
    b = np.zeros_like(a)
    a[:4] = True  # 400 voxels
    b[2:6] = True  # 400 voxels, 200 shared
    assert dice(a, b) == pytest.approx(0.5)
    assert iou(a, b) == pytest.approx(200 / 600)
    assert dice(a, a) == 1.0 and iou(a, ~a) == 0.0
    assert dice(np.zeros(3), np.zeros(3)) == 1.0
    assert dice(a.astype(np.float32) * 0.9, b) == pytest.approx(0.5)  # probabilities thresholded


def test_hd95_concentric_balls_and_matches_monai():
    a = _ball((41, 41, 41), (20, 20, 20), 10)
    b = _ball((41, 41, 41), (20, 20, 20), 14)
    assert hd95(a, b) == pytest.approx(4.0, abs=0.8)
    assert hd95(a, b, spacing=(2, 2, 2)) == pytest.approx(2 * hd95(a, b), rel=1e-6)
    c = _ball((41, 41, 41), (23, 20, 18), 9)
    ref = compute_hausdorff_distance(
        torch.from_numpy(a)[None, None], torch.from_numpy(c)[None, None], percentile=95
    ).item()
    assert hd95(a, c) == pytest.approx(ref, rel=0.05)
    assert hd95(a, np.zeros_like(a)) == float("inf")
    assert hd95(np.zeros_like(a), np.zeros_like(a)) == 0.0


def test_lesion_detection_counts():
    truth = np.zeros((30, 30, 30), bool)
    pred = np.zeros_like(truth)
    truth[2:5, 2:5, 2:5] = True  # lesion 1: hit
    truth[10:13, 10:13, 10:13] = True  # lesion 2: missed
    pred[3:6, 3:6, 3:6] = True
    pred[20:22, 20:22, 20:22] = True  # false positive
    r = lesion_detection(pred, truth)
    assert (r["tp"], r["fn"], r["fp"]) == (1, 1, 1)
    assert r["precision"] == 0.5 and r["recall"] == 0.5 and r["f1"] == pytest.approx(0.5)
    assert lesion_detection(np.zeros(8), np.zeros(8))["f1"] == 1.0


def test_rmse_with_mask():
    pred, truth = np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 3.0])
    assert rmse(pred, truth) == pytest.approx(np.sqrt(4 / 3))
    assert rmse(pred, truth, mask=np.array([1, 0, 1])) == 0.0


def test_classification_metrics():
    y = [0, 0, 1, 1, 1]
    p = [0.1, 0.6, 0.7, 0.4, 0.9]
    m = classification_metrics(y, p)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (2, 1, 1, 1)
    assert m["accuracy"] == pytest.approx(0.6)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["auc"] == pytest.approx(5 / 6)
    assert np.isnan(classification_metrics([1, 1], [0.2, 0.9])["auc"])
