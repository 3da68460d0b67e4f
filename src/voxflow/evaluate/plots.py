"""Figures: training curves and orthogonal-slice montages (PNG, written atomically)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from voxflow.io.atomic import atomic_path


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png", metadata={"Software": None})
    _pyplot().close(fig)
    return Path(path)


def plot_training_curves(
    history: pd.DataFrame,
    path: str | Path,
    monitor: str = "val_loss",
    best_epoch: int | None = None,
    marker: str | None = None,
) -> Path:
    """Loss (train/val) and any ``val_*`` metric per epoch; the kept epoch ``best_epoch`` is
    marked (labelled ``marker``, default "best (<monitor>)")."""
    plt = _pyplot()
    metrics = [c for c in history.columns if c.startswith("val_") and c != "val_loss"]
    fig, axes = plt.subplots(1, 1 + len(metrics), figsize=(5 * (1 + len(metrics)), 3.6))
    axes = np.atleast_1d(axes)
    axes[0].plot(history["epoch"], history["train_loss"], label="train")
    axes[0].plot(history["epoch"], history["val_loss"], label="val")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    for ax, m in zip(axes[1:], metrics, strict=True):
        ax.plot(history["epoch"], history[m], color="C2")
        ax.set(xlabel="epoch", ylabel=m, title=m)
    for ax in axes:
        if best_epoch:
            label = marker or f"best ({monitor})"
            ax.axvline(best_epoch, color="grey", ls="--", lw=1, label=label)
        ax.grid(alpha=0.3)
    axes[0].legend()
    return _save(fig, path)


def centre_slices(vol: np.ndarray) -> list[np.ndarray]:
    """Axial, coronal and sagittal slices through the centre of a RAS-ordered volume."""
    i, j, k = (s // 2 for s in vol.shape[:3])
    return [vol[:, :, k], vol[:, j, :], vol[i, :, :]]


def plot_montage(
    volumes: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | Path,
    overlays: Sequence[np.ndarray | None] | None = None,
    row_labels: Sequence[str] | None = None,
    slicer: Callable[[np.ndarray], list[np.ndarray]] = centre_slices,
) -> Path:
    """Slices of each volume (one column per volume; by default the axial, coronal and
    sagittal centre slices). Binary overlays are drawn in one colour, label maps (values > 1)
    one colour per label."""
    plt = _pyplot()
    n = len(volumes)
    n_rows = len(slicer(volumes[0]))
    fig, axes = plt.subplots(n_rows, n, figsize=(2.6 * n, 2.5 * n_rows), squeeze=False)
    overlays = overlays or [None] * n
    for c, (vol, title, ov) in enumerate(zip(volumes, titles, overlays, strict=True)):
        ov_slices = slicer(ov) if ov is not None else [None] * n_rows
        labels = ov is not None and float(np.max(ov)) > 1
        cmap, vmax = ("tab10", 9) if labels else ("autumn", 1)
        for r, (img, mask) in enumerate(zip(slicer(vol), ov_slices, strict=True)):
            ax = axes[r, c]
            ax.imshow(np.rot90(img), cmap="gray")
            if mask is not None:
                m = np.rot90(mask)
                ax.imshow(np.ma.masked_where(m <= 0, m), cmap=cmap, alpha=0.6, vmin=0, vmax=vmax)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=9)
            if c == 0 and row_labels:
                ax.set_ylabel(row_labels[r])
    return _save(fig, path)


def plot_map_grid(
    rows: Sequence[tuple[str, Sequence[tuple[str, np.ndarray]], str, tuple[float, float]]],
    path: str | Path,
    unit: str = "",
) -> Path:
    """A grid of 2D maps: each row is (label, [(title, map), ...], colormap, (vmin, vmax)), with a
    colour bar per row (e.g. truth and predictions in one row, their errors in the next)."""
    plt = _pyplot()
    ncol = max(len(r[1]) for r in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(2.6 * ncol, 2.6 * len(rows)), squeeze=False)
    for r, (label, maps, cmap, (vmin, vmax)) in enumerate(rows):
        im = None
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= len(maps):
                ax.axis("off")
                continue
            title, img = maps[c]
            im = ax.imshow(np.rot90(img), cmap=cmap, vmin=vmin, vmax=vmax)
            ax.set_title(title, fontsize=9)
        axes[r, 0].set_ylabel(label)
        if im is not None:
            fig.colorbar(im, ax=list(axes[r]), shrink=0.8, label=unit)
    return _save(fig, path)
