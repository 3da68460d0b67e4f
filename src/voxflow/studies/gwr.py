"""Study ``gwr``: brain landmarks on post-arrest CT from registered MR labels; grey/white ratio.

Stages (one function each, called by the thin workflow scripts): ``preprocess_case`` (labels to
the study's numbering, CT and labels resampled to the target spacing and cropped to the head),
``make_split``, ``intensity_fingerprint`` + ``normalise`` (nnU-Net's CT normalisation: clip to
the 0.5/99.5 percentiles of the labelled training voxels, z-score with their mean and SD),
``roi_fingerprint`` + ``roi_box`` (the landmark ROI: a fixed box around the cranial cavity found
on the CT, moved by the offset learnt from the training labels), ``train_model`` (own 3D U-Net
on the ROIs, softmax over 5 classes, Dice + CE, through the shared Trainer), ``predict_cases``
(sliding window with test-time mirroring, probabilities back onto each CT's own grid), ``evaluate``
(Dice per structure per patient, GWR_BG from predicted vs reference masks, poor outcome at a
threshold) and ``summarize`` (the paper's Table 1 layout).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from voxflow.errors import VoxflowError, input_error
from voxflow.evaluate.metrics import dice
from voxflow.io.images import check_finite, check_same_grid, read_image, write_nifti
from voxflow.phantoms.gwr import STRUCTURES, gwr_bg
from voxflow.preprocess.crop import bounding_box, centred_box, crop_affine, crop_padded
from voxflow.seeding import rng

log = logging.getLogger(__name__)
N_CLASSES = len(STRUCTURES) + 1
AIR_HU = -1024.0


def remap_labels(data: np.ndarray, mapping: Mapping[str, int], path: str | Path) -> np.ndarray:
    """The study's numbering (1 corpus callosum ... 4 internal capsule) from a label file's own
    values (``mapping``: structure -> value in the file). Other values become background."""
    unknown = sorted(set(mapping) - set(STRUCTURES.values()))
    if unknown:
        raise VoxflowError(
            f"gwr.labels: unknown structure(s) {unknown}; allowed {list(STRUCTURES.values())}"
        )
    out = np.zeros(data.shape, np.uint8)
    for value, name in STRUCTURES.items():
        if name not in mapping:
            raise VoxflowError(f"gwr.labels: no value given for '{name}'")
        inside = data == mapping[name]
        if not inside.any():
            raise input_error(
                path,
                f"no voxels labelled {mapping[name]} ({name})",
                "Check gwr.labels against the label file's values",
            )
        out[inside] = value
    return out


def preprocess_case(
    ct_path: str | Path,
    labels_path: str | Path,
    out_dir: str | Path,
    spacing_mm: list[float],
    mapping: Mapping[str, int],
    margin_mm: float = 6.0,
) -> dict[str, Path]:
    """Write ``reference.nii.gz`` (the registered labels in the study's numbering, on the CT
    grid), and ``ct_hu.nii.gz`` + ``labels.nii.gz`` resampled to ``spacing_mm`` (CT linear,
    labels by largest fraction) and cropped to the head (CT > -500 HU) plus a margin."""
    from voxflow.preprocess.resample import resample

    out_dir = Path(out_dir)
    ct = check_finite(read_image(ct_path), "CT")
    labels = read_image(labels_path, dtype=None)
    check_same_grid(ct, labels)
    labels.data = remap_labels(labels.data, mapping, labels_path)
    paths = {"reference": write_nifti(out_dir / "reference.nii.gz", labels.data, labels.affine)}
    ct_r, labels_r = resample(ct, spacing_mm), resample(labels, spacing_mm, label="multi")
    head = ct_r.data > -500
    if not head.any():
        raise input_error(ct_path, "no voxel above -500 HU (no head in the image?)")
    margin = int(np.ceil(margin_mm / min(spacing_mm)))
    box = bounding_box(head, margin)
    affine = crop_affine(ct_r.affine, box)
    paths["ct_hu"] = write_nifti(out_dir / "ct_hu.nii.gz", ct_r.data[box], affine)
    paths["labels"] = write_nifti(out_dir / "labels.nii.gz", labels_r.data[box], affine)
    return paths


def make_split(patients: list[str], seed: int, val_fraction: float) -> pd.DataFrame:
    """Random patient-level train/val split (the paper: 44/11), at least one of each."""
    n = len(patients)
    if n < 2:
        raise VoxflowError(f"gwr: {n} patient(s); a train/val split needs at least 2")
    patients = sorted(patients)
    n_val = min(max(1, round(val_fraction * n)), n - 1)
    order = rng(seed, "gwr-split").permutation(n)
    split = np.array(["train"] * n, dtype=object)
    split[order[:n_val]] = "val"
    return pd.DataFrame({"patient": patients, "split": split})


def intensity_fingerprint(case_dirs: list[Path]) -> dict[str, float]:
    """nnU-Net's CT statistics over the labelled voxels of the training cases: 0.5 and 99.5
    percentiles, mean and SD (after clipping to those percentiles).

    The landmarks are grey and white matter only, so the window is narrow (about 24-45 HU on
    the phantom) and clips CSF onto white matter; a soft-tissue fingerprint (-100..200 HU) that
    keeps the ventricles visible measured worse in the demo (validation Dice 0.52 vs 0.57)."""
    values = []
    for d in case_dirs:
        hu = read_image(d / "ct_hu.nii.gz").data
        values.append(hu[read_image(d / "labels.nii.gz", dtype=None).data > 0])
    v = np.concatenate(values).astype(np.float64)
    if v.size == 0:
        raise VoxflowError(f"no labelled voxels in the training cases ({case_dirs[0]}...)")
    lo, hi = np.percentile(v, [0.5, 99.5])
    v = np.clip(v, lo, hi)
    return {"p00_5": float(lo), "p99_5": float(hi), "mean": float(v.mean()), "std": float(v.std())}


def cavity_centre(hu: np.ndarray, affine: np.ndarray, path: str | Path = "CT") -> np.ndarray:
    """World (RAS mm) centroid of the cranial cavity, from the CT alone (so the same at
    training and inference): on each axial slice the brain-like voxels (-50..100 HU) enclosed
    by bone (> 300 HU), largest connected part. Without a skull (a skull-stripped image) the
    head (> -500 HU) is used, with a warning."""
    from scipy import ndimage

    bone = hu > 300
    cavity = np.zeros(hu.shape, bool)
    for k in range(hu.shape[2]):
        cavity[..., k] = ndimage.binary_fill_holes(bone[..., k]) & ~bone[..., k]
    cavity &= (hu > -50) & (hu < 100)
    parts, n = ndimage.label(cavity)
    if n:
        sizes = ndimage.sum_labels(cavity, parts, range(1, n + 1))
        inside = parts == int(np.argmax(sizes)) + 1
    else:
        inside = hu > -500
        if not inside.any():
            raise input_error(path, "no voxel above -500 HU (no head in the image?)")
        log.warning("%s: no skull-enclosed brain found; the ROI is centred on the head", path)
    centre = np.array(ndimage.center_of_mass(inside))
    return affine[:3, :3] @ centre + affine[:3, 3]


def roi_box(
    hu: np.ndarray,
    affine: np.ndarray,
    offset_mm: list[float] | np.ndarray,
    roi_mm: list[float],
    path: str | Path = "CT",
) -> tuple[slice, ...]:
    """The landmark ROI: a box of ``roi_mm`` around the cranial-cavity centre moved by
    ``offset_mm`` (world; learnt from the training labels in :func:`roi_fingerprint`). The
    box may reach outside the image (crop it with :func:`crop_padded`)."""
    return _box_around(
        cavity_centre(hu, affine, path) + np.asarray(offset_mm, float), affine, roi_mm
    )


def _box_around(
    centre_mm: np.ndarray, affine: np.ndarray, roi_mm: list[float]
) -> tuple[slice, ...]:
    """A box of ``roi_mm`` (rounded to whole voxels) centred on a world point."""
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    size = [max(1, int(round(r / s))) for r, s in zip(roi_mm, spacing, strict=True)]
    return centred_box(np.linalg.solve(affine[:3, :3], centre_mm - affine[:3, 3]), size)


def roi_fingerprint(
    case_dirs: list[Path], roi_mm: list[float] | None, min_coverage: float = 0.99
) -> dict[str, Any]:
    """Where the landmarks sit relative to the cranial cavity: the mean world offset (mm) of
    the centre of their bounding box from :func:`cavity_centre` over the training cases, and
    the smallest fraction of a case's landmark voxels inside its ROI. A case below
    ``min_coverage`` is an error naming it (the ROI is too small for these data)."""
    if not roi_mm:
        return {"roi_mm": None, "roi_offset_mm": [0.0, 0.0, 0.0], "roi_coverage": 1.0}
    cases = []
    for d in case_dirs:
        ct = read_image(d / "ct_hu.nii.gz")
        labels = read_image(d / "labels.nii.gz", dtype=None).data > 0
        idx = np.argwhere(labels)
        if idx.size == 0:
            raise input_error(d / "labels.nii.gz", "no landmark voxels")
        mid = (idx.min(0) + idx.max(0)) / 2.0
        centre = cavity_centre(ct.data, ct.affine, d)
        cases.append((d, ct.affine, labels, centre, ct.affine[:3, :3] @ mid + ct.affine[:3, 3]))
    mean_offset = np.mean([c[4] - c[3] for c in cases], axis=0)
    coverage = {}
    for d, affine, labels, centre, _ in cases:
        box = _box_around(centre + mean_offset, affine, roi_mm)
        coverage[d.name] = float(crop_padded(labels, box).sum() / labels.sum())
    worst = min(coverage, key=coverage.__getitem__)
    if coverage[worst] < min_coverage:
        raise VoxflowError(
            f"{case_dirs[0].parent / worst}: only {coverage[worst]:.1%} of the landmarks lie "
            f"inside the gwr.roi_mm {list(roi_mm)} box; enlarge gwr.roi_mm (or set it to null "
            "to train on the whole head)"
        )
    return {
        "roi_mm": [float(r) for r in roi_mm],
        "roi_offset_mm": [round(float(x), 3) for x in mean_offset],
        "roi_coverage": round(coverage[worst], 5),
    }


def normalise(hu: np.ndarray, fp: Mapping[str, float]) -> np.ndarray:
    """Clip to the fingerprint's percentiles and z-score (nnU-Net's CTNormalization)."""
    clipped = np.clip(hu, fp["p00_5"], fp["p99_5"])
    return ((clipped - fp["mean"]) / max(fp["std"], 1e-6)).astype(np.float32)


def _subject(case_dir: Path, fp: Mapping[str, Any], with_label: bool = True):
    """A TorchIO subject of the normalised CT (and labels), cropped to the landmark ROI when
    the fingerprint has one (voxels outside the image are air)."""
    import torch
    import torchio as tio

    ct = read_image(case_dir / "ct_hu.nii.gz")
    arrays = {"ct": ct.data}
    if with_label:
        arrays["label"] = read_image(case_dir / "labels.nii.gz", dtype=None).data.astype(np.int64)
    affine = ct.affine
    if fp.get("roi_mm"):
        box = roi_box(ct.data, ct.affine, fp["roi_offset_mm"], fp["roi_mm"], case_dir)
        arrays = {k: crop_padded(v, box, AIR_HU if k == "ct" else 0) for k, v in arrays.items()}
        affine = crop_affine(ct.affine, box)
    kwargs: dict[str, Any] = {"case": case_dir.name}
    kwargs["ct"] = tio.ScalarImage(
        tensor=torch.from_numpy(normalise(arrays["ct"], fp))[None], affine=affine
    )
    if with_label:
        label = torch.from_numpy(arrays["label"])[None]
        kwargs["label"] = tio.LabelMap(tensor=label, affine=affine)
    return tio.Subject(**kwargs)


def _pad_to(subject, patch: list[int]):
    """Pad a subject so each side is at least the patch size (small crops, big patches)."""
    import torchio as tio

    short = [max(p - s, 0) for p, s in zip(patch, subject.spatial_shape, strict=True)]
    if not any(short):
        return subject
    pad = [x for s in short for x in (s // 2, s - s // 2)]
    return tio.Pad(pad, padding_mode="minimum")(subject)


def build_model(name: str, model_cfg: Mapping[str, Any]):
    from voxflow.models.unet3d import build_unet

    kwargs = {
        "in_channels": 1,
        "out_channels": N_CLASSES,
        "base_filters": model_cfg["base_filters"],
        "depth": model_cfg["depth"],
    }
    if name == "resunet3d":
        kwargs["dropout"] = model_cfg.get("dropout", 0.0)
    return build_unet(name, **kwargs)


def train_model(
    model_name: str,
    train_dirs: list[Path],
    val_dirs: list[Path],
    fp: Mapping[str, Any],
    out_dir: Path,
    cfg: Mapping[str, Any],
    seed: int,
    device: str,
    threads: int,
    fingerprint: str = "",
):
    """Train the own 3D U-Net (Dice + CE, softmax) on the landmark ROIs: whole ROIs, freshly
    augmented, when the patch is the ROI; else structure-centred patches from a queue."""
    import torchio as tio
    from torch.utils.data import DataLoader

    from voxflow.augment import build_augmentation, patch_queue, whole_volume_loader
    from voxflow.train.loop import Metric, TrainConfig, Trainer
    from voxflow.train.losses import DiceCELoss, hard_dice_per_sample

    patch = list(cfg["patch_size"])

    def dataset(dirs, transform=None):
        subjects = [_pad_to(_subject(d, fp), patch) for d in dirs]
        return tio.SubjectsDataset(subjects, transform=transform)

    def loader(ds, train: bool = True):
        if {tuple(s.spatial_shape) for s in ds.dry_iter()} == {tuple(patch)}:
            repeats = cfg["samples_per_volume"] if train else 1
            return whole_volume_loader(ds, repeats, cfg["batch_size"], shuffle=train)
        queue = patch_queue(
            ds,
            patch,
            cfg["samples_per_volume"],
            lesion_probability=cfg["foreground_probability"],
            classes=N_CLASSES,
        )
        return DataLoader(queue, batch_size=cfg["batch_size"], num_workers=0)

    train_loader = loader(dataset(train_dirs, build_augmentation(cfg["augment"])))
    val_loader = loader(dataset(val_dirs), train=False)

    def batch(b):
        return b["ct"]["data"].float(), b["label"]["data"].long()

    trainer = Trainer(
        lambda: build_model(model_name, cfg["model"]),
        DiceCELoss(),
        TrainConfig.from_dict(cfg["train"], seed=seed, device=device, threads=threads),
        out_dir,
        metric=Metric("dice", hard_dice_per_sample),
        batch_fn=batch,
        fingerprint=fingerprint,
    )
    return trainer.fit(train_loader, val_loader)


def predict_cases(
    model_name: str,
    weights: Path,
    case_dirs: list[Path],
    ct_paths: list[Path],
    out_paths: list[Path],
    fp: Mapping[str, Any],
    cfg: Mapping[str, Any],
    device: str,
) -> list[Path]:
    """Sliding-window softmax on each preprocessed case, resampled (linear, per class) back
    onto the case's original CT grid, argmax -> ``out_paths`` (uint8 label maps)."""
    from voxflow.evaluate.inference import sliding_window
    from voxflow.preprocess.resample import resample_to_grid
    from voxflow.train.device import select_device
    from voxflow.train.loop import load_weights

    dev = select_device(device)
    model = load_weights(build_model(model_name, cfg["model"]), weights, dev).to(dev)
    patch, overlap = list(cfg["patch_size"]), list(cfg["patch_overlap"])
    for case_dir, ct_path, out in zip(case_dirs, ct_paths, out_paths, strict=True):
        subject = _subject(case_dir, fp, with_label=False)
        probs = sliding_window(
            model,
            subject,
            lambda b: b["ct"]["data"].float(),
            patch,
            overlap,
            dev,
            "softmax",
            mirror_axes=cfg.get("mirror_axes", ()),
        )
        src_affine = subject["ct"].affine  # the preprocessed grid, already read by _subject
        ct = read_image(ct_path, dtype=None)
        on_ct = np.stack(
            [
                resample_to_grid(p, src_affine, ct.shape, ct.affine, cval=float(k == 0))
                for k, p in enumerate(probs)
            ]
        )
        write_nifti(out, on_ct.argmax(0).astype(np.uint8), ct.affine)
        log.info("predicted %s", case_dir.name)
    return out_paths


def evaluate(
    model: str,
    patients: list[str],
    split: Mapping[str, str],
    ct_paths: list[Path],
    reference_paths: list[Path],
    pred_paths: list[Path],
    outcomes: Mapping[str, int],
    threshold: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Dice per structure per patient and GWR_BG (predicted vs reference masks, mean HU on
    the patient's CT) with the poor-outcome call ``GWR < threshold``."""
    dice_rows, gwr_rows = [], []
    for patient, ct_path, ref_path, pred_path in zip(
        patients, ct_paths, reference_paths, pred_paths, strict=True
    ):
        ct = read_image(ct_path)
        ref, pred = read_image(ref_path, dtype=None), read_image(pred_path, dtype=None)
        check_same_grid(ct, pred)
        for value, name in STRUCTURES.items():
            dice_rows.append(
                {
                    "model": model,
                    "patient": patient,
                    "split": split[patient],
                    "structure": name,
                    "dice": dice(pred.data == value, ref.data == value),
                }
            )
        g_true = gwr_bg(ct.data, ref.data)
        try:
            g_pred = gwr_bg(ct.data, pred.data)
        except VoxflowError as err:  # a structure not found: no GWR for this patient
            log.warning("%s %s: %s", model, patient, err)
            g_pred = float("nan")
        gwr_rows.append(
            {
                "model": model,
                "patient": patient,
                "split": split[patient],
                "gwr_true": g_true,
                "gwr_pred": g_pred,
                "poor_true": outcomes.get(patient, pd.NA),
                "poor_pred": int(g_pred < threshold) if np.isfinite(g_pred) else pd.NA,
            }
        )
    return pd.DataFrame(dice_rows), pd.DataFrame(gwr_rows)


def summarize(dice_table: pd.DataFrame) -> pd.DataFrame:
    """Table 1: per model and split (train, val, all) the number of patients and the mean and
    SD over patients of their mean Dice over the four structures."""
    per_patient = dice_table.groupby(["model", "split", "patient"], sort=False)["dice"].mean()
    per_patient = per_patient.reset_index()
    rows = []
    for model, g in per_patient.groupby("model", sort=False):
        for split in ("train", "val", "all"):
            s = g if split == "all" else g[g.split == split]
            rows.append(
                {
                    "model": model,
                    "split": split,
                    "n": len(s),
                    "mean_dice": float(s.dice.mean()) if len(s) else float("nan"),
                    "sd_dice": float(s.dice.std(ddof=1)) if len(s) > 1 else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def read_outcomes(path: str | Path | None) -> dict[str, int]:
    """``patient -> poor_outcome`` from ``outcomes.csv`` (optional: {} when absent)."""
    from voxflow.io.layouts.gwr import read_outcome_rows

    if not path or not Path(path).is_file():
        return {}
    return read_outcome_rows(path)


def read_fingerprint(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


def registration_table(
    patients: list[str],
    info_paths: list[str | Path],
    ct_paths: list[str | Path],
    truth_paths: list[str | Path] | None,
    out_path: str | Path,
) -> pd.DataFrame:
    """``patient tre_mm seconds``: TRE of each estimated transform against the phantom's known
    one (NaN for real data, which has no ground truth) and the registration's wall time."""
    import SimpleITK as sitk

    from voxflow.io.tables import write_tsv
    from voxflow.register import target_registration_error

    rows = []
    for i, patient in enumerate(patients):
        info_path = Path(info_paths[i])
        info = json.loads(info_path.read_text())
        tre = float("nan")
        if truth_paths:
            estimated = sitk.ReadTransform(str(info_path.with_name("ct_to_mr.tfm")))
            truth = sitk.ReadTransform(str(truth_paths[i]))
            tre = target_registration_error(estimated, truth, sitk.ReadImage(str(ct_paths[i])))
        rows.append({"patient": patient, "tre_mm": tre, "seconds": info["seconds"]})
    table = pd.DataFrame(rows)
    write_tsv(table, out_path)
    return table


def plot_overlay(ct_path, reference_path, pred_path, out_path) -> Path:
    """CT in a brain window (0-80 HU) with the reference and the predicted landmarks, on the
    axial slices through the basal ganglia and the corpus callosum."""
    from voxflow.evaluate.plots import plot_montage

    ct = read_image(ct_path).data
    ref = read_image(reference_path, dtype=None).data
    pred = read_image(pred_path, dtype=None).data
    value = {name: v for v, name in STRUCTURES.items()}
    ks = [int(np.argmax((ref == value[n]).sum((0, 1)))) for n in ("putamen", "corpus_callosum")]
    slices = [np.clip(ct[:, :, k], 0, 80) for k in ks]
    return plot_montage(
        [np.stack(slices, -1)] * 2,
        ["reference (registered MR labels)", "prediction"],
        out_path,
        overlays=[ref[:, :, ks], pred[:, :, ks]],
        row_labels=["basal ganglia", "corpus callosum"],
        slicer=lambda v: [v[:, :, 0], v[:, :, 1]],
    )


def plot_dice_histogram(dice_table: pd.DataFrame, out_path: str | Path) -> Path:
    """Histogram of the per-patient mean Dice, one colour per model and split."""
    from voxflow.evaluate.plots import _pyplot, _save

    plt = _pyplot()
    per_patient = dice_table.groupby(["model", "split", "patient"])["dice"].mean().reset_index()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    bins = np.linspace(0, 1, 21)
    for (model, split), g in per_patient.groupby(["model", "split"]):
        ax.hist(g.dice, bins=bins, alpha=0.6, label=f"{model} {split} (n={len(g)})")
    ax.set(xlabel="mean Dice over the 4 landmarks", ylabel="patients", title="Dice histogram")
    ax.legend(fontsize=8)
    return _save(fig, out_path)
