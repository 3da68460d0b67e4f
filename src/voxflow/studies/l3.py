"""Study ``l3``: the L3 slice of whole-body CT by a per-slice ResNet, its design tuned by Optuna.

Stages (one function each, called by the thin workflow scripts): ``preprocess_case`` (the axial
CT as slices sorted feet -> head: HU window [-200, 1500] stretched to [0, 1], resized to a square
``image_size``; per-slice L3 labels from the CSV row or the vertebra mask), ``make_folds``
(patient-level K-fold) and ``inner_split`` (the tuning's validation patients inside a training
fold), ``train_classifier`` (the shared Trainer on one design: momentum SGD with the design's L2
and learning rate, gradient clipping per parameter (``l2norm``) or over all (``global-l2norm``),
class weight, over-sampling of L3 slices with rotation/translation/shear/reflection),
``objective`` (1 / F1 of the per-slice calls on the inner validation patients), ``predict`` and
``decode`` (per-slice probabilities -> one L3 slice), ``evaluate`` (slice error per patient,
Fig. 4 regression, Table 2).

**Decoding rule**: the probabilities are (optionally) smoothed along the slices by a moving
average of ``smooth_slices`` slices (1 = none, the default); the slices at or above
``threshold`` form runs of consecutive slices; the run with the largest summed (smoothed)
probability is the L3 vertebra and its centre
(``(first + last) / 2``, a half-integer when the run has an even length) the predicted slice.
Without any slice at the threshold, the most probable slice is taken. The true slice is the
centre of the labelled L3 range, so the error is in slices (multiples of 0.5) and in mm
(times the slice spacing).

**Class weight** ``w`` in [0, 1] weighs the L3 slices' loss by ``(n_other / n_L3) ** w``: 0 is
equal weights (the control arm), 1 balances the classes fully. **Over-sampling rate** ``r`` in
[0, 0.25] adds ``round(r * n)`` augmented copies of L3 slices to the ``n`` training slices of
every epoch (each copy freshly augmented).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import read_npz, write_json, write_npz
from voxflow.io.images import check_finite, read_image
from voxflow.io.layouts.l3 import feet_to_head_order
from voxflow.preprocess.resample import resize_slices
from voxflow.seeding import derive_seed, rng

log = logging.getLogger(__name__)


# ---- preprocessing --------------------------------------------------------------------------
def window_stretch(hu: np.ndarray, window: Sequence[float]) -> np.ndarray:
    """HU clipped to ``window`` and stretched linearly to [0, 1] (float32)."""
    lo, hi = float(window[0]), float(window[1])
    if hi <= lo:
        raise VoxflowError(f"l3.window_hu: {list(window)} must be [low, high] with low < high")
    return ((np.clip(hu, lo, hi) - lo) / (hi - lo)).astype(np.float32)


def preprocess_case(
    ct_path: str | Path,
    out_path: str | Path,
    is_l3: np.ndarray,
    image_size: int,
    window: Sequence[float] = (-200.0, 1500.0),
) -> dict[str, Any]:
    """Write ``out_path`` (.npz): ``images`` (n, S, S) float16 in [0, 1] as radiological axial
    views (rows anterior -> posterior), ``labels`` (n,) uint8, ``z_mm`` (n,), ``slice_mm``, all
    sorted feet -> head. ``is_l3`` flags the CT volume's slices (its own k order)."""
    ct = check_finite(read_image(ct_path), "CT")
    if ct.data.ndim != 3 or ct.data.shape[2] < 2:
        raise input_error(ct_path, f"need an axial CT volume, got shape {ct.data.shape}")
    n = ct.data.shape[2]
    if len(is_l3) != n:
        raise input_error(ct_path, f"{n} slices but {len(is_l3)} L3 flags")
    order = feet_to_head_order(ct.affine, n)
    # voxel (i, j) -> image row j, column i: rows run anterior -> posterior in DICOM order
    slices = np.moveaxis(ct.data[:, :, order], 2, 0).transpose(0, 2, 1)
    images = resize_slices(window_stretch(slices, window), image_size)
    z = (ct.affine[:3, :3] @ np.stack([np.zeros(n), np.zeros(n), order]) + ct.affine[:3, 3:4])[2]
    labels = np.asarray(is_l3, bool)[order].astype(np.uint8)
    info = {
        "images": images.astype(np.float16),
        "labels": labels,
        "z_mm": z.astype(np.float64),
        "slice_mm": float(np.median(np.abs(np.diff(z)))),
    }
    out_path = Path(out_path)
    write_npz(out_path, info)
    log.info(
        "%s: %d slices (%.2f mm), L3 slices %s",
        out_path.name,
        n,
        info["slice_mm"],
        np.flatnonzero(labels).tolist(),
    )
    return info


def load_case(path: str | Path) -> dict[str, np.ndarray]:
    """A preprocessed case (see :func:`preprocess_case`)."""
    return read_npz(path, "Run the l3_preprocess rule")


# ---- splits ---------------------------------------------------------------------------------
def make_folds(patients: Sequence[str], seed: int, n_folds: int) -> pd.DataFrame:
    """Patient-level K-fold: a seeded permutation dealt round-robin (fold sizes differ by <= 1)."""
    patients = sorted(patients)
    if not 2 <= n_folds <= len(patients):
        raise VoxflowError(f"l3.folds: {n_folds} folds need 2..{len(patients)} patients")
    perm = rng(seed, "l3-folds").permutation(len(patients))
    fold = np.empty(len(patients), int)
    fold[perm] = np.arange(len(patients)) % n_folds
    return pd.DataFrame({"patient": patients, "fold": fold})


def inner_split(train: Sequence[str], seed: int, fold: int, fraction: float) -> dict[str, list]:
    """The tuning's split of a fold's training patients: ``train`` / ``val`` lists."""
    train = sorted(train)
    n_val = int(round(fraction * len(train)))
    if not 1 <= n_val < len(train):
        raise VoxflowError(
            f"l3.inner_val_fraction {fraction} leaves {n_val} of {len(train)} training patients "
            "for the tuning's validation; need at least one on each side"
        )
    perm = rng(seed, "l3-inner", fold).permutation(len(train))
    val = sorted(train[i] for i in perm[:n_val])
    return {"train": [p for p in train if p not in val], "val": val}


# ---- training -------------------------------------------------------------------------------
def with_context(case: Mapping[str, np.ndarray], context_mm: Sequence[float]) -> np.ndarray:
    """A case's slices as channels (n, C, S, S) float32: for each slice, the slices nearest to
    its height + each offset of ``context_mm`` (clamped at the ends). ``[0]`` is the paper's
    single slice; e.g. ``[-30, 0, 30]`` adds the slices about one vertebra below and above."""
    z = np.asarray(case["z_mm"], np.float64)
    images = np.asarray(case["images"], np.float32)
    idx = [np.abs(z[None, :] - (z[:, None] + float(o))).argmin(axis=1) for o in context_mm]
    return np.stack([images[i] for i in idx], axis=1)


def stack_cases(paths: Sequence[str | Path], context_mm: Sequence[float] = (0.0,)) -> tuple:
    """All slices of the cases as tensors: images (N, C, S, S) float32, labels (N, 1) float32."""
    import torch

    cases = [load_case(p) for p in paths]
    x = torch.from_numpy(np.concatenate([with_context(c, context_mm) for c in cases]))
    y = torch.from_numpy(np.concatenate([c["labels"] for c in cases]).astype(np.float32))
    return x, y[:, None]


def build_model(cfg: Mapping[str, Any]):
    """The per-slice ResNet of the study config (one input channel per context offset)."""
    from voxflow.models.resnet import build_resnet

    channels = len(cfg.get("context_mm", [0.0]))
    return build_resnet(spatial_dims=2, in_channels=channels, num_classes=1, **cfg["model"])


def slice_loader(x, y, batch_size: int, oversampling: float = 0.0, augment=None, shuffle=True):
    """Batches of slices; ``round(oversampling * N)`` extra L3 slices, augmented afresh each
    epoch by ``augment`` (a dict for :func:`voxflow.augment.augment_slices`)."""
    import torch

    from voxflow.augment import augment_slices

    positives = torch.nonzero(y[:, 0] > 0.5)[:, 0]
    extra = int(round(oversampling * len(x))) if len(positives) else 0

    class Slices(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(x) + extra

        def __getitem__(self, i: int):
            if i < len(x):
                return x[i], y[i]
            j = positives[(i - len(x)) % len(positives)]
            return augment_slices(x[j : j + 1], **(augment or {}))[0], y[j]

    # training drops a last partial batch: a batch of one breaks batch norm on 1x1 features
    drop = shuffle and len(x) + extra > batch_size
    return torch.utils.data.DataLoader(
        Slices(), batch_size=batch_size, shuffle=shuffle, drop_last=drop
    )


def pos_weight(y, class_weight: float) -> float:
    """Loss weight of the L3 class: (n_other / n_L3) ** class_weight."""
    n_pos = float((y > 0.5).sum())
    if n_pos == 0:
        raise VoxflowError("no L3 slice among the training slices; check the labels")
    return float(((len(y) - n_pos) / n_pos) ** float(class_weight))


def train_config(
    params: Mapping[str, Any], train: Mapping[str, Any], seed: int, device: str, threads: int
) -> Any:
    """The Trainer settings of one design (``params``: the tuned variables)."""
    from voxflow.train.loop import TrainConfig

    method = {"l2norm": "per_parameter_norm", "global-l2norm": "global_norm"}
    if params["grad_method"] not in method:
        raise VoxflowError(f"l3: grad_method '{params['grad_method']}' not one of {list(method)}")
    return TrainConfig.from_dict(
        dict(train),
        lr=float(params["lr"]),
        weight_decay=float(params["l2"]),
        grad_clip=float(params["grad_threshold"]),
        grad_clip_mode=method[params["grad_method"]],
        patience=0,
        seed=seed,
        device=device,
        threads=threads,
    )


def train_classifier(
    params: Mapping[str, Any],
    train_paths: Sequence[str | Path],
    val_paths: Sequence[str | Path] | None,
    cfg: Mapping[str, Any],
    seed: int,
    out_dir: str | Path,
    device: str = "cpu",
    threads: int = 1,
    fingerprint: str = "",
):
    """Train the per-slice ResNet with one design. With ``val_paths`` the kept model is the
    epoch of lowest validation loss; without (the final fit on a whole training fold) the
    validation pass runs on every 4th training slice, un-augmented."""
    import torch

    from voxflow.train.loop import Trainer

    context = cfg.get("context_mm", [0.0])
    x, y = stack_cases(train_paths, context)
    # the final fit holds nothing out: its validation pass re-reads every 4th training slice
    xv, yv = stack_cases(val_paths, context) if val_paths else (x[::4], y[::4])
    loss = torch.nn.BCEWithLogitsLoss(
        pos_weight=torch.tensor([pos_weight(y, params.get("class_weight", 0.0))])
    )
    trainer = Trainer(
        lambda: build_model(cfg),
        loss,
        train_config(params, cfg["train"], seed, device, threads),
        out_dir,
        fingerprint=fingerprint,
    )
    batch = int(params["batch_size"])
    train_loader = slice_loader(
        x, y, batch, float(params.get("oversampling", 0.0)), cfg.get("augment")
    )
    result = trainer.fit(train_loader, slice_loader(xv, yv, 256, shuffle=False))
    return trainer.model, result


def predict(
    model, paths: Sequence[str | Path], context_mm: Sequence[float] = (0.0,)
) -> dict[str, np.ndarray]:
    """Per-slice L3 probabilities (feet -> head) of each case, by file stem (on the model's
    device)."""
    import torch

    device = next(model.parameters()).device
    model.eval()
    out = {}
    with torch.no_grad():
        for p in paths:
            x = torch.from_numpy(with_context(load_case(p), context_mm))
            probs = [
                torch.sigmoid(model(x[i : i + 256].to(device))).float().cpu()
                for i in range(0, len(x), 256)
            ]
            out[Path(p).stem] = torch.cat(probs)[:, 0].numpy().astype(np.float64)
    return out


def f1(probs: Mapping[str, np.ndarray], paths: Sequence[str | Path], threshold: float) -> float:
    """F1 of the per-slice L3 calls (probability >= ``threshold``) over all the cases' slices."""
    tp = fp = fn = 0
    for p in paths:
        truth = load_case(p)["labels"] > 0
        call = probs[Path(p).stem] >= threshold
        tp += int((call & truth).sum())
        fp += int((call & ~truth).sum())
        fn += int((~call & truth).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def objective_value(f1_value: float) -> float:
    """The paper's objective 1 / F1 (F1 = 0 scores 1000, worse than any F1 > 0.001)."""
    return 1.0 / max(f1_value, 1e-3)


def make_objective(
    train_paths: Sequence[str | Path],
    val_paths: Sequence[str | Path],
    cfg: Mapping[str, Any],
    seed: int,
    work_dir: str | Path,
    device: str = "cpu",
    threads: int = 1,
):
    """objective(params) -> 1 / F1 on the inner validation patients; every trial starts from
    the same initial weights (seed) in a scratch folder removed afterwards."""
    counter = iter(range(10**9))

    def objective(params: dict) -> float:
        out = Path(work_dir) / f"trial_{next(counter):04d}"
        shutil.rmtree(out, ignore_errors=True)
        try:
            model, _ = train_classifier(
                params, train_paths, val_paths, cfg, seed, out, device, threads
            )
            value = f1(
                predict(model, val_paths, cfg.get("context_mm", [0.0])),
                val_paths,
                cfg["decode"]["threshold"],
            )
        finally:
            shutil.rmtree(out, ignore_errors=True)
        log.info("design %s: inner validation F1 %.4f", params, value)
        return objective_value(value)

    return objective


# ---- decoding and evaluation ------------------------------------------------------------------
def decode(
    probs: np.ndarray, smooth_slices: int = 1, threshold: float = 0.5
) -> tuple[float, int, int]:
    """One L3 slice from per-slice probabilities (the module's decoding rule):
    (centre, first, last) of the chosen run, indices feet -> head."""
    p = np.asarray(probs, np.float64)
    if p.ndim != 1 or len(p) == 0 or not np.isfinite(p).all():
        raise VoxflowError("decode: need a non-empty 1D array of finite probabilities")
    if smooth_slices < 1 or smooth_slices % 2 == 0:
        raise VoxflowError(f"l3.decode.smooth_slices: {smooth_slices} must be odd and >= 1")
    half = smooth_slices // 2
    padded = np.pad(p, half, mode="edge")
    s = np.convolve(padded, np.ones(smooth_slices) / smooth_slices, mode="valid")
    above = s >= threshold
    if not above.any():
        k = int(np.argmax(s))
        return float(k), k, k
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(int), [0]])))
    runs = list(zip(edges[::2], edges[1::2] - 1, strict=True))
    first, last = max(runs, key=lambda r: (s[r[0] : r[1] + 1].sum(), -r[0]))
    return (first + last) / 2.0, int(first), int(last)


def true_slice(labels: np.ndarray, where: str = "") -> float:
    """Centre of the labelled L3 range (feet -> head)."""
    idx = np.flatnonzero(np.asarray(labels) > 0)
    if len(idx) == 0:
        raise VoxflowError(f"{where}: no L3 slice labelled")
    return (idx[0] + idx[-1]) / 2.0


def slice_errors(
    probs: Mapping[str, np.ndarray],
    paths: Sequence[str | Path],
    arm: str,
    fold: int,
    decode_cfg: Mapping[str, Any],
) -> pd.DataFrame:
    """Per patient: true vs predicted L3 slice, error in slices and mm (the spec's columns)."""
    rows = []
    for p in paths:
        case = load_case(p)
        patient = Path(p).stem
        truth = true_slice(case["labels"], str(p))
        pred, _, _ = decode(probs[patient], decode_cfg["smooth_slices"], decode_cfg["threshold"])
        err = abs(pred - truth)
        rows.append(
            {
                "arm": arm,
                "fold": fold,
                "patient": patient,
                "true_slice": truth,
                "pred_slice": pred,
                "error_slices": err,
                "error_mm": err * float(case["slice_mm"]),
            }
        )
    return pd.DataFrame(rows)


def summarize(errors: pd.DataFrame) -> pd.DataFrame:
    """Table 2 + Fig. 4 per arm: mean/SD of |slice error|, R², slope and intercept of predicted
    on true slice (least squares)."""
    rows = []
    for arm, g in errors.groupby("arm", sort=False):
        t, p = g["true_slice"].to_numpy(float), g["pred_slice"].to_numpy(float)
        slope, intercept = np.polyfit(t, p, 1) if len(g) > 1 else (np.nan, np.nan)
        ss_tot = float(((p - p.mean()) ** 2).sum())
        r2 = 1 - float(((p - (slope * t + intercept)) ** 2).sum()) / ss_tot if ss_tot else np.nan
        rows.append(
            {
                "arm": arm,
                "n": len(g),
                "mean_error": g["error_slices"].mean(),
                "sd_error": g["error_slices"].std(ddof=1) if len(g) > 1 else np.nan,
                "mean_error_mm": g["error_mm"].mean(),
                "r2": r2,
                "slope": slope,
                "intercept": intercept,
            }
        )
    return pd.DataFrame(rows)


def plot_scatter(errors: pd.DataFrame, summary: pd.DataFrame, path: str | Path) -> Path:
    """Fig. 4: predicted vs true L3 slice per arm, identity line, R² in the legend."""
    from voxflow.evaluate.plots import _pyplot, _save

    plt = _pyplot()
    arms = list(summary["arm"])
    fig, axes = plt.subplots(1, len(arms), figsize=(4.2 * len(arms), 4), squeeze=False)
    lim = [
        errors[["true_slice", "pred_slice"]].min().min() - 2,
        errors[["true_slice", "pred_slice"]].max().max() + 2,
    ]
    for ax, (_, s) in zip(axes[0], summary.iterrows(), strict=True):
        g = errors[errors["arm"] == s["arm"]]
        ax.plot(lim, lim, color="0.7", lw=1)
        ax.scatter(g["true_slice"], g["pred_slice"], s=14)
        ax.set(xlim=lim, ylim=lim, xlabel="true L3 slice", ylabel="predicted L3 slice")
        ax.set_title(
            f"{s['arm']}: R²={s['r2']:.3f}, y={s['slope']:.2f}x{s['intercept']:+.2f}\n"
            f"|error| {s['mean_error']:.2f} ± {s['sd_error']:.2f} slices",
            fontsize=9,
        )
    return _save(fig, path)


def fold_seed(seed: int, arm: str, fold: int) -> int:
    """The training seed of one (arm, fold): every design there starts from the same weights."""
    return derive_seed(seed, "l3", arm, fold)


# ---- workflow stages -------------------------------------------------------------------------
def case_labels(
    patient: str,
    ct_path: str | Path,
    labels_path: str | Path,
    labels: Mapping[str, Any],
    patients: Sequence[str],
) -> np.ndarray:
    """L3 flag per slice of the converted CT (its own k order), from the cohort's CSV row or the
    patient's vertebra mask (``labels.source``: csv | mask; ``labels.l3_value``)."""
    from voxflow.io.images import check_same_grid
    from voxflow.io.layouts.l3 import l3_from_mask, l3_from_row, read_labels

    ct = read_image(ct_path)
    if labels.get("source", "csv") == "mask":
        mask = read_image(labels_path, dtype=None)
        check_same_grid(ct, mask)
        return l3_from_mask(mask.data, int(labels["l3_value"]), labels_path)
    rows = read_labels(labels_path, list(patients))
    return l3_from_row(rows[patient], ct.affine, ct.data.shape[2])


def _study_name(arm: str, fold: int, fingerprint: str) -> str:
    return f"l3-{arm}-fold{fold}-{fingerprint[:12]}"


def tune_worker(
    journal: Path,
    out_tsv: Path,
    arm: str,
    fold: int,
    worker: int,
    folds_tsv: Path,
    slices: Sequence[Path],
    cfg: Mapping[str, Any],
    tune: Mapping[str, Any],
    seed: int,
    device: str = "cpu",
    threads: int = 1,
) -> pd.DataFrame:
    """One tuning worker: designs of ``arm`` scored by 1 / F1 on the fold's inner validation
    patients until the study holds ``tune.trials`` finished trials; writes the study's trial
    table (with a ``study`` column) to ``out_tsv``. The study lives in ``journal`` under a name
    that carries a fingerprint of the data and settings, so changed inputs start a new study
    while a killed or re-budgeted run continues the old one."""
    from voxflow import tune as tuning
    from voxflow.io.tables import write_tsv
    from voxflow.train.loop import run_fingerprint

    by_name = {p.stem: p for p in slices}
    inner = inner_split(sorted(by_name), seed, fold, cfg["inner_val_fraction"])
    settings = {k: v for k, v in tune.items() if k not in ("trials", "workers")}
    fingerprint = run_fingerprint([folds_tsv, *slices], [dict(cfg), settings, seed, arm, fold])
    name = _study_name(arm, fold, fingerprint)
    log.info(
        "%s: worker %d, inner train %s, inner val %s", name, worker, inner["train"], inner["val"]
    )
    objective = make_objective(
        [by_name[p] for p in inner["train"]],
        [by_name[p] for p in inner["val"]],
        cfg,
        fold_seed(seed, arm, fold),
        out_tsv.parent / f"scratch_worker{worker}",
        device,
        threads,
    )
    study = tuning.run_worker(
        journal,
        name,
        objective,
        arm,
        int(tune["trials"]),
        worker=worker,
        sampler=tune["sampler"],
        seed=seed,
        space_overrides=tune.get("space") or None,
        n_startup_trials=tune.get("startup_trials"),
    )
    table = tuning.trials_table(study)
    table.insert(0, "study", name)
    write_tsv(table, out_tsv)
    return table


def collect_study(
    journal: Path, worker_tsvs: Sequence[Path], arm: str, best_json: Path, trials_tsv: Path
) -> dict:
    """The best design of a finished study (``best.json``: study, value, params) and its trial
    table (``trials.tsv``)."""

    from voxflow import tune as tuning
    from voxflow.io.tables import read_tsv, write_tsv

    names = {read_tsv(p, ["study"])["study"].iloc[0] for p in worker_tsvs}
    if len(names) != 1:
        raise VoxflowError(f"{journal}: the workers tuned different studies {sorted(names)}")
    name = names.pop()
    study = tuning.open_study(journal, name, None)
    best = tuning.best_params(study, arm)
    write_tsv(tuning.trials_table(study), trials_tsv)
    value = study.best_value
    record = {"study": name, "arm": arm, "objective": value, "f1": 1.0 / value, "params": best}
    write_json(best_json, record)
    return record


def predict_table(
    model_path: str | Path,
    slices: Sequence[str | Path],
    cfg: Mapping[str, Any],
    device: str,
    out_tsv: str | Path,
) -> pd.DataFrame:
    """Per-slice L3 probability of each case (``patient slice prob label``, feet -> head)."""
    from voxflow.io.tables import write_tsv
    from voxflow.train.device import select_device
    from voxflow.train.loop import load_weights

    dev = select_device(device)
    model = build_model(cfg)
    model = load_weights(model, model_path, dev).to(dev)
    probs = predict(model, slices, cfg.get("context_mm", [0.0]))
    rows = []
    for p in slices:
        labels = load_case(p)["labels"]
        pr = probs[Path(p).stem]
        rows.append(
            pd.DataFrame(
                {"patient": Path(p).stem, "slice": np.arange(len(pr)), "prob": pr, "label": labels}
            )
        )
    df = pd.concat(rows, ignore_index=True)
    write_tsv(df, out_tsv)
    return df


def tables(
    runs: Sequence[Sequence],
    pred_tsvs: Sequence[str | Path],
    best_jsons: Sequence[str | Path],
    trial_tsvs: Sequence[str | Path],
    slices: Sequence[str | Path],
    decode_cfg: Mapping[str, Any],
    out: Mapping[str, str],
) -> pd.DataFrame:
    """``slice_error.tsv``, ``summary.tsv``, ``scatter.png``, ``best_params.tsv`` and the
    optimisation history plot from every (arm, fold)'s predictions and study."""
    import json

    from voxflow import tune as tuning
    from voxflow.io.tables import read_tsv, write_tsv

    by_name = {Path(p).stem: p for p in slices}
    errors, best_rows = [], []
    for (arm, fold), pred, best in zip(runs, pred_tsvs, best_jsons, strict=True):
        df = read_tsv(pred, ["patient", "slice", "prob"])
        probs = {k: g.sort_values("slice")["prob"].to_numpy() for k, g in df.groupby("patient")}
        errors.append(slice_errors(probs, [by_name[k] for k in probs], arm, int(fold), decode_cfg))
        record = json.loads(Path(best).read_text())
        best_rows.append(
            {"arm": arm, "fold": int(fold), "f1_inner": record["f1"], **record["params"]}
        )
    err = pd.concat(errors, ignore_index=True).sort_values(["arm", "fold", "patient"])
    summary = summarize(err)
    write_tsv(err, out["errors"])
    write_tsv(summary, out["summary"])
    write_tsv(pd.DataFrame(best_rows), out["best"])
    plot_scatter(err, summary, out["scatter"])
    tuning.plot_history(
        {
            f"{a} fold {f}": read_tsv(p, ["number", "state", "value"])
            for (a, f), p in zip(runs, trial_tsvs, strict=True)
        },
        out["history"],
    )
    return summary
