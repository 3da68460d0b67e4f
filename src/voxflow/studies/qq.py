"""Study qq (seed 000): 3D ResNet vs 3D CNN for the QSM+qBOLD parameters, and the voxelwise fit.

Glue over the shared library: crop to the ROI, channel normalisation from the training subjects,
patch training through the one :class:`~voxflow.train.loop.Trainer` (masked Huber loss),
whole-crop inference, RMSE per parameter and OEF, the voxelwise NLLS reference arm
(:func:`voxflow.physics.qq_model.fit_voxels`) and the tables of ../shared/specs/qq.md.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxflow.errors import VoxflowError
from voxflow.evaluate.metrics import rmse
from voxflow.io.images import read_image, write_nifti
from voxflow.io.layouts.qq import GT_MAPS, QQData
from voxflow.physics import qq_model
from voxflow.seeding import rng

TABLE_COLUMNS = ["model", "subject", *GT_MAPS, "oef", "seconds"]


def crop_slices(shape: tuple[int, ...], crop: list[int]) -> tuple[slice, slice, slice]:
    """Centre ``crop[0] x crop[1]`` in-plane and the middle ``crop[2]`` slices (clipped)."""
    out = []
    for n, c in zip(shape[:3], crop, strict=True):
        c = min(int(c), n)
        start = (n - c) // 2
        out.append(slice(start, start + c))
    return tuple(out)  # type: ignore[return-value]


def crop_case(data: QQData, crop: list[int]) -> dict[str, np.ndarray]:
    """Inputs (C = echoes + QSM, x, y, z), targets (5, x, y, z), mask and the cropped affine."""
    sl = crop_slices(data.mgre.shape, crop)
    inputs = np.concatenate([np.moveaxis(data.mgre[sl], -1, 0), data.qsm[sl][None]], 0)
    if data.gt is None:
        raise VoxflowError(f"subject {data.subject}: ground-truth maps are needed for training")
    targets = np.stack([data.gt[p][sl] for p in GT_MAPS], 0)
    affine = data.affine.copy()
    affine[:3, 3] += affine[:3, :3] @ np.array([s.start for s in sl], float)
    mask = data.mask[sl]
    if not mask.any():
        raise VoxflowError(
            f"subject {data.subject}: no mask voxel inside the {crop} crop; enlarge qq.crop"
        )
    return {"inputs": inputs, "targets": targets, "mask": mask, "affine": affine}


def write_cropped(cropped: dict[str, np.ndarray], folder: Path) -> None:
    """Cached intermediates: inputs/targets as 4D NIfTI (channels last), mask."""
    aff = cropped["affine"]
    write_nifti(folder / "inputs.nii.gz", np.moveaxis(cropped["inputs"], 0, -1), aff, np.float32)
    write_nifti(folder / "targets.nii.gz", np.moveaxis(cropped["targets"], 0, -1), aff, np.float32)
    write_nifti(folder / "mask.nii.gz", cropped["mask"].astype(np.uint8), aff)


def read_cropped(folder: Path) -> dict[str, np.ndarray]:
    inputs = read_image(folder / "inputs.nii.gz")
    return {
        "inputs": np.moveaxis(inputs.data, -1, 0),
        "targets": np.moveaxis(read_image(folder / "targets.nii.gz").data, -1, 0),
        "mask": read_image(folder / "mask.nii.gz", dtype=None).data > 0,
        "affine": inputs.affine,
    }


def make_split(subjects: list[str], seed: int, n_test: int, n_val: int) -> pd.DataFrame:
    """Random split by subject: ``n_test`` test, ``n_val`` validation carved from the rest."""
    if n_test + n_val >= len(subjects):
        raise VoxflowError(
            f"qq split: {len(subjects)} subjects cannot give {n_test} test + {n_val} validation "
            "and leave any for training; lower qq.split or add subjects"
        )
    order = rng(seed, "qq-split").permutation(sorted(subjects))
    role = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(subjects) - n_test - n_val)
    return pd.DataFrame({"subject": order, "split": role}).sort_values("subject")


INPUT_TRANSFORMS = ("log", "none")


def network_inputs(inputs: np.ndarray, transform: str) -> np.ndarray:
    """The network's channels from the cropped inputs (echo magnitudes..., QSM).

    ``log``: the magnitudes as ln S (floored at 1e-6 of the largest), so that relaxation
    (R2, R2' = v * delta-omega) is a linear contrast between echo channels; ``none``: as read."""
    if transform == "none":
        return inputs
    if transform != "log":
        raise VoxflowError(f"qq.input_transform {transform!r}: use one of {INPUT_TRANSFORMS}")
    mag = inputs[:-1].astype(np.float64)
    floor = 1e-6 * max(float(mag.max()), 1e-12)
    return np.concatenate([np.log(np.maximum(mag, floor)), inputs[-1:]], 0)


def normalisation(folders: list[Path], transform: str = "none") -> dict[str, Any]:
    """Per-channel mean/std of the network inputs (after ``transform``) and of the targets over
    the mask voxels of ``folders``; the transform is recorded with them."""
    sums: dict[str, list[np.ndarray]] = {"inputs": [], "targets": []}
    for f in folders:
        c = read_cropped(f)
        c["inputs"] = network_inputs(c["inputs"], transform)
        for k in sums:
            sums[k].append(c[k][:, c["mask"]].astype(np.float64))
    out: dict[str, Any] = {"input_transform": transform}
    for k, parts in sums.items():
        x = np.concatenate(parts, 1)
        out[f"{k}_mean"] = x.mean(1).tolist()
        out[f"{k}_std"] = np.maximum(x.std(1), 1e-12).tolist()
    return out


def _normalised_inputs(c: dict[str, np.ndarray], norm: dict[str, Any]) -> np.ndarray:
    x = network_inputs(c["inputs"], norm["input_transform"])
    return _norm(x, norm["inputs_mean"], norm["inputs_std"]) * c["mask"]


def _norm(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    shape = (-1,) + (1,) * (x.ndim - 1)
    return (x - np.reshape(mean, shape)) / np.reshape(std, shape)


def _denorm(x: np.ndarray, mean: list[float], std: list[float]) -> np.ndarray:
    shape = (-1,) + (1,) * (x.ndim - 1)
    return x * np.reshape(std, shape) + np.reshape(mean, shape)


def _subject(folder: Path, norm: dict[str, Any]):
    import torch
    import torchio as tio

    c = read_cropped(folder)
    x = _normalised_inputs(c, norm)
    y = _norm(c["targets"], norm["targets_mean"], norm["targets_std"]) * c["mask"]
    return tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(x.astype(np.float32)), affine=c["affine"]),
        target=tio.ScalarImage(tensor=torch.from_numpy(y.astype(np.float32)), affine=c["affine"]),
        mask=tio.LabelMap(
            tensor=torch.from_numpy(c["mask"][None].astype(np.uint8)), affine=c["affine"]
        ),
        name=folder.name,
    )


def build_model(name: str, n_in: int, model_cfg: dict[str, Any]):
    from voxflow.models.resnet_qq import build_qq_model

    return build_qq_model(name, in_channels=n_in, out_channels=len(GT_MAPS), **model_cfg)


def train_model(
    model_name: str,
    train_dirs: list[Path],
    val_dirs: list[Path],
    norm: dict[str, Any],
    out_dir: Path,
    cfg: dict[str, Any],
    seed: int,
    device: str,
    threads: int,
    fingerprint: str = "",
):
    """Train one network on tissue-centred patches (masked Huber on normalised maps)."""
    import torchio as tio
    from torch.utils.data import DataLoader

    from voxflow.augment import patch_queue
    from voxflow.train.loop import TrainConfig, Trainer
    from voxflow.train.losses import MaskedHuberLoss

    train_ds = tio.SubjectsDataset([_subject(d, norm) for d in train_dirs])
    queue = patch_queue(train_ds, cfg["patch_size"], cfg["samples_per_volume"], label_name="mask")
    train_loader = DataLoader(queue, batch_size=cfg["batch_size"], num_workers=0)
    val_ds = tio.SubjectsDataset([_subject(d, norm) for d in val_dirs])
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=0)  # whole crops

    def batch(b):
        return b["image"]["data"], b["target"]["data"], b["mask"]["data"]

    n_in = len(norm["inputs_mean"])
    train_cfg = TrainConfig.from_dict(cfg["train"], seed=seed, device=device, threads=threads)
    trainer = Trainer(
        lambda: build_model(model_name, n_in, cfg["model"]),
        MaskedHuberLoss(cfg.get("huber_delta", 1.0)),
        train_cfg,
        out_dir,
        batch_fn=batch,
        fingerprint=fingerprint,
    )
    return trainer.fit(train_loader, val_loader)


def predict_case(model, folder: Path, norm: dict[str, Any], device: str = "cpu"):
    """Parameter maps (5, x, y, z) of one cropped subject, in physical units; and seconds."""
    import torch

    c = read_cropped(folder)
    x = _normalised_inputs(c, norm)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = model(torch.from_numpy(x[None].astype(np.float32)).to(device))[0].cpu().numpy()
    seconds = time.perf_counter() - t0
    return _denorm(out.astype(np.float64), norm["targets_mean"], norm["targets_std"]), seconds


def score(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    """RMSE per parameter over the mask, and of OEF in percentage points."""
    row = {p: rmse(pred[i], truth[i], mask) for i, p in enumerate(GT_MAPS)}
    y = GT_MAPS.index("Y")
    row["oef"] = 100 * rmse(qq_model.oef(pred[y]), qq_model.oef(truth[y]), mask)
    return row


def evaluate_model(
    model_name: str,
    model_path: Path,
    test_dirs: list[Path],
    norm: dict[str, Any],
    cfg: dict[str, Any],
    device: str,
    pred_dir: Path,
) -> pd.DataFrame:
    """Whole-crop inference on each test subject; writes the predicted maps; one row each."""
    from voxflow.train.device import select_device
    from voxflow.train.loop import load_weights

    dev = select_device(device)
    model = build_model(model_name, len(norm["inputs_mean"]), cfg["model"])
    load_weights(model, model_path, dev)
    model.to(dev).eval()
    rows = []
    for d in test_dirs:
        pred, seconds = predict_case(model, d, norm, str(dev))
        c = read_cropped(d)
        write_nifti(
            pred_dir / f"{d.name}.nii.gz", np.moveaxis(pred, 0, -1), c["affine"], np.float32
        )
        rows.append(
            {
                "model": model_name,
                "subject": d.name,
                **score(pred, c["targets"], c["mask"]),
                "seconds": seconds,
            }
        )
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def train_mean_rows(test_dirs: list[Path], norm: dict[str, Any]) -> pd.DataFrame:
    """The reference a network must beat: every tissue voxel predicted as the training set's
    mean of each parameter (what a model that learned nothing from the data would output)."""
    rows = []
    for d in test_dirs:
        c = read_cropped(d)
        pred = np.broadcast_to(
            np.asarray(norm["targets_mean"], np.float64)[:, None, None, None], c["targets"].shape
        )
        row = score(pred, c["targets"], c["mask"])
        rows.append({"model": "train_mean", "subject": d.name, **row, "seconds": 0.0})
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


def fit_case(
    folder: Path, echo_times: np.ndarray, norm: dict[str, Any], fit_cfg: dict[str, Any]
) -> tuple[np.ndarray, dict[str, float]]:
    """Voxelwise NLLS fit of one cropped subject inside its mask; maps (5, x, y, z) and a row.

    Residuals are weighted by the expected noise: magnitude sigma = mean first echo /
    ``fit.snr``, QSM sigma = ``fit.qsm_sigma_ppm`` (only their ratio changes the optimum). The
    initial Y and v are the training subjects' means (no test data is used).
    """
    c = read_cropped(folder)
    n_e = len(echo_times)
    if c["inputs"].shape[0] != n_e + 1:
        raise VoxflowError(
            f"{folder}: {c['inputs'].shape[0] - 1} echoes in the crop, {n_e} echo times"
        )
    m = c["mask"]
    mag = c["inputs"][:n_e, m].T.astype(np.float64)
    chi = c["inputs"][n_e, m].astype(np.float64)
    sigma = float(mag[:, 0].mean()) / fit_cfg["snr"]
    y, v = GT_MAPS.index("Y"), GT_MAPS.index("v")
    prior = {"Y": norm["targets_mean"][y], "v": norm["targets_mean"][v]}
    res = qq_model.fit_voxels(
        mag,
        chi,
        echo_times,
        sigma,
        fit_cfg["qsm_sigma_ppm"],
        prior=prior,
        method=fit_cfg.get("method", "lm"),
        max_iter=fit_cfg.get("max_iter", 100),
        chunk=fit_cfg.get("chunk", 500),
    )
    pred = np.zeros_like(c["targets"], dtype=np.float64)
    pred[:, m] = res.params.T
    row = {
        "model": "nlls",
        "subject": folder.name,
        **score(pred, c["targets"], m),
        "seconds": res.seconds,
    }
    return pred, row


def summarize(per_subject: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``rmse.tsv`` (rows per model x subject, then a ``mean`` row per model; Table 2) and
    ``oef_rmse.tsv`` (model, mean OEF RMSE in %; Table 3)."""
    rows = []
    for model, df in per_subject.groupby("model", sort=False):
        rows.append(df)
        mean = df[[*GT_MAPS, "oef", "seconds"]].mean().to_dict()
        rows.append(pd.DataFrame([{"model": model, "subject": "mean", **mean}]))
    table = pd.concat(rows, ignore_index=True)[TABLE_COLUMNS]
    oef = table[table.subject == "mean"][["model", "oef"]].rename(columns={"oef": "oef_rmse"})
    return table, oef.reset_index(drop=True)


def save_json(obj: Any, path: Path) -> None:
    from voxflow.io.atomic import write_json

    write_json(path, obj, indent=1)


def plot_oef_maps(truth_dir: Path, preds: dict[str, Path], path: str | Path) -> Path:
    """OEF (%) of the middle slice: truth and each method, then each method's error."""
    from voxflow.evaluate.plots import plot_map_grid

    c = read_cropped(truth_dir)
    k = c["mask"].shape[2] // 2
    mask = c["mask"][..., k]
    y = GT_MAPS.index("Y")

    def oef_slice(y_map: np.ndarray) -> np.ndarray:
        return np.where(mask, 100 * qq_model.oef(y_map[..., k]), np.nan)

    truth = oef_slice(c["targets"][y])
    est = {m: oef_slice(read_image(p).data[..., y]) for m, p in preds.items()}
    return plot_map_grid(
        [
            ("OEF (%)", [("truth", truth), *est.items()], "viridis", (10.0, 70.0)),
            ("error (%)", [(m, e - truth) for m, e in est.items()], "RdBu_r", (-15.0, 15.0)),
        ],
        path,
        unit="%",
    )
