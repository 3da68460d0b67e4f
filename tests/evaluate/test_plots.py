import numpy as np
import pandas as pd

from voxflow.evaluate.plots import centre_slices, plot_montage, plot_training_curves


def _is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_training_curves_png(tmp_path):
    hist = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "train_loss": [1, 0.5, 0.4],
            "val_loss": [1.1, 0.6, 0.7],
            "val_dice": [0.2, 0.5, 0.45],
        }
    )
    out = plot_training_curves(hist, tmp_path / "c.png", best_epoch=2)
    assert _is_png(out) and out.stat().st_size > 5000


def test_montage_png(tmp_path, small_brain):
    out = plot_montage(
        [small_brain.t1] * 2, ["a", "b"], tmp_path / "m.png", overlays=[small_brain.wm > 0.5, None]
    )
    assert _is_png(out)
    ax, co, sa = centre_slices(np.zeros((4, 5, 6)))
    assert ax.shape == (4, 5) and co.shape == (4, 6) and sa.shape == (5, 6)


def test_montage_with_label_overlays_and_own_slices(tmp_path):
    vol = np.random.default_rng(0).random((20, 20, 2))
    labels = np.zeros((20, 20, 2), np.uint8)
    labels[5:10, 5:10], labels[12:15, 3:8] = 1, 4
    out = plot_montage(
        [vol, vol],
        ["ref", "pred"],
        tmp_path / "l.png",
        overlays=[labels, None],
        slicer=lambda v: [v[:, :, 0], v[:, :, 1]],
    )
    assert _is_png(out)
