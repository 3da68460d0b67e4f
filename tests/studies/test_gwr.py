from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.images import read_image, write_nifti
from voxflow.studies import gwr

MAPPING = {"corpus_callosum": 11, "caudate": 12, "putamen": 13, "internal_capsule": 14}
TINY = {
    "augment": {"flip": 0.5},
    "patch_size": [16, 16, 8],
    "patch_overlap": [4, 4, 2],
    "samples_per_volume": 2,
    "foreground_probability": 0.8,
    "batch_size": 2,
    "model": {"base_filters": 4, "depth": 2},
    "train": {"epochs": 2, "lr": 1e-3, "patience": 0},
}


def synthetic_case(folder: Path, seed: int) -> tuple[Path, Path]:
    """A head-like CT (HU) at 1x1x3 mm with four blob landmarks, labels numbered as MAPPING."""
    g = np.random.default_rng(seed)
    shape = (40, 36, 14)
    idx = np.indices(shape)
    centre = np.array(shape)[:, None, None, None] / 2
    r = np.sqrt((((idx - centre) / (np.array([16, 14, 6])[:, None, None, None])) ** 2).sum(0))
    ct = np.where(r < 1, 30.0, -1000.0) + np.where((r >= 0.85) & (r < 1), 1200, 0)
    labels = np.zeros(shape, np.uint8)
    for k, (value, hu) in enumerate(zip(MAPPING.values(), (28, 44, 42, 29), strict=True)):
        c = np.array([12 + 5 * k, 18 + g.integers(-2, 3), 7])[:, None, None, None]
        blob = np.sqrt((((idx - c) / np.array([2, 4, 2])[:, None, None, None]) ** 2).sum(0)) < 1
        labels[blob], ct[blob] = value, hu
    ct += g.normal(0, 2, shape)
    affine = np.diag([-1.0, -1.0, 3.0, 1.0])
    affine[:3, 3] = [20, 18, -20]
    return (
        write_nifti(folder / "ct.nii.gz", ct.astype(np.float32), affine),
        write_nifti(folder / "labels.nii.gz", labels, affine),
    )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    root = tmp_path_factory.mktemp("gwr")
    cases = {}
    for i in range(4):
        ct, labels = synthetic_case(root / "raw" / f"p{i}", i)
        out = root / "pre" / f"p{i}"
        gwr.preprocess_case(ct, labels, out, [2.0, 2.0, 3.0], MAPPING)
        cases[f"p{i}"] = (ct, out)
    return root, cases


def test_remap_labels_and_missing_structure(tmp_path):
    data = np.array([0, 11, 12, 13, 14, 99])
    assert gwr.remap_labels(data, MAPPING, "x").tolist() == [0, 1, 2, 3, 4, 0]
    with pytest.raises(VoxflowError, match=r"lab.nii.gz: no voxels labelled 14 \(internal_capsule"):
        gwr.remap_labels(data[:4], MAPPING, "lab.nii.gz")
    with pytest.raises(VoxflowError, match="unknown structure"):
        gwr.remap_labels(data, {**MAPPING, "thalamus": 5}, "x")


def test_preprocess_resamples_crops_and_keeps_labels(cohort):
    root, cases = cohort
    ct_path, out = cases["p0"]
    ct_hu, labels = read_image(out / "ct_hu.nii.gz"), read_image(out / "labels.nii.gz", dtype=None)
    assert ct_hu.spacing == pytest.approx((2.0, 2.0, 3.0))
    assert ct_hu.shape == labels.shape and ct_hu.shape[0] == 20  # resampled from 40 x 1 mm
    assert set(np.unique(labels.data)) == {0, 1, 2, 3, 4}
    ref = read_image(out / "reference.nii.gz", dtype=None)
    raw = read_image(ct_path)
    assert ref.shape == raw.shape and np.allclose(ref.affine, raw.affine)
    # the landmarks stay where they were in the world
    for v in (1, 4):
        a = ref.affine @ np.r_[np.argwhere(ref.data == v).mean(0), 1]
        b = labels.affine @ np.r_[np.argwhere(labels.data == v).mean(0), 1]
        assert np.linalg.norm(a - b) < 2.0


def test_mismatched_grid_is_refused(tmp_path):
    ct, labels = synthetic_case(tmp_path, 0)
    lab = read_image(labels, dtype=None)
    write_nifti(tmp_path / "shifted.nii.gz", lab.data, lab.affine + np.diag([0, 0, 0, 0]) + 5)
    with pytest.raises(VoxflowError):
        gwr.preprocess_case(ct, tmp_path / "shifted.nii.gz", tmp_path / "o", [2, 2, 3], MAPPING)
    assert not (tmp_path / "o" / "ct_hu.nii.gz").exists()


def test_split_is_seeded_and_keeps_both_sides():
    patients = [f"p{i:02d}" for i in range(55)]
    a = gwr.make_split(patients, 1, 0.2)
    assert (a.split == "val").sum() == 11 and (a.split == "train").sum() == 44
    assert a.equals(gwr.make_split(patients, 1, 0.2))
    assert not a.equals(gwr.make_split(patients, 2, 0.2))
    assert (gwr.make_split(["a", "b"], 1, 0.01).split == "val").sum() == 1
    with pytest.raises(VoxflowError):
        gwr.make_split(["a"], 1, 0.5)


def test_fingerprint_and_normalisation(cohort):
    _, cases = cohort
    fp = gwr.intensity_fingerprint([out for _, out in cases.values()])
    assert 25 < fp["mean"] < 45 and fp["p00_5"] < fp["mean"] < fp["p99_5"]
    z = gwr.normalise(np.array([-1000.0, fp["mean"], 3000.0]), fp)
    assert z[1] == pytest.approx(0) and z[0] == (fp["p00_5"] - fp["mean"]) / fp["std"]


def test_cavity_centre_is_the_skull_interior_and_falls_back_to_the_head(tmp_path, caplog):
    ct_path, _ = synthetic_case(tmp_path, 0)
    ct = read_image(ct_path)
    centre_vox = np.array(ct.shape) / 2
    expected = ct.affine[:3, :3] @ centre_vox + ct.affine[:3, 3]
    assert np.allclose(gwr.cavity_centre(ct.data, ct.affine), expected, atol=2.0)
    stripped = np.where(ct.data > 300, -1000.0, ct.data)  # no skull: the head's centroid
    assert np.allclose(gwr.cavity_centre(stripped, ct.affine, "x.nii"), expected, atol=2.0)
    assert "no skull-enclosed brain" in caplog.text
    with pytest.raises(VoxflowError, match="air.nii: no voxel above -500 HU"):
        gwr.cavity_centre(np.full((4, 4, 4), -1000.0), ct.affine, "air.nii")


def test_roi_fingerprint_learns_the_offset_and_refuses_a_small_roi(cohort):
    _, cases = cohort
    dirs = [out for _, out in cases.values()]
    fp = gwr.roi_fingerprint(dirs, [40.0, 40.0, 24.0])
    assert fp["roi_coverage"] == 1.0 and len(fp["roi_offset_mm"]) == 3
    # the landmarks' box centre is left of the head centre along the first voxel axis
    ct = read_image(dirs[0] / "ct_hu.nii.gz")
    lab = read_image(dirs[0] / "labels.nii.gz", dtype=None).data
    idx = np.argwhere(lab > 0)
    mid = ct.affine[:3, :3] @ ((idx.min(0) + idx.max(0)) / 2) + ct.affine[:3, 3]
    offset = mid - gwr.cavity_centre(ct.data, ct.affine)
    assert np.allclose(fp["roi_offset_mm"], offset, atol=3.0)
    with pytest.raises(VoxflowError, match=r"p\d: only .* of the landmarks lie inside .* enlarge"):
        gwr.roi_fingerprint(dirs, [8.0, 8.0, 6.0])
    assert gwr.roi_fingerprint(dirs, None)["roi_mm"] is None


def test_subject_is_cropped_to_the_roi_with_world_positions_kept(cohort):
    _, cases = cohort
    out = cases["p1"][1]
    fp = {**gwr.intensity_fingerprint([out]), **gwr.roi_fingerprint([out], [40.0, 40.0, 30.0])}
    subject = gwr._subject(out, fp)
    assert subject["ct"].shape == (1, 20, 20, 10)  # 40 x 40 x 30 mm at 2 x 2 x 3 mm
    lab = read_image(out / "labels.nii.gz", dtype=None)
    roi_lab = subject["label"].data[0].numpy()
    assert (roi_lab > 0).sum() == (lab.data > 0).sum()
    for v in (1, 4):
        a = lab.affine @ np.r_[np.argwhere(lab.data == v).mean(0), 1]
        b = subject["label"].affine @ np.r_[np.argwhere(roi_lab == v).mean(0), 1]
        assert np.allclose(a, b)
    whole = gwr._subject(out, {**fp, "roi_mm": None})
    assert whole["ct"].shape[1:] == lab.shape


def test_train_predict_evaluate_round_trip(cohort, tmp_path, monkeypatch):
    import voxflow.augment

    calls, real = [], voxflow.augment.whole_volume_loader

    def spy(ds, repeats, batch_size, shuffle=True):
        calls.append((repeats, shuffle))
        return real(ds, repeats, batch_size, shuffle)

    monkeypatch.setattr(voxflow.augment, "whole_volume_loader", spy)
    _, cases = cohort
    dirs = [out for _, out in cases.values()]
    fp = {**gwr.intensity_fingerprint(dirs[:3]), **gwr.roi_fingerprint(dirs[:3], [32, 32, 24])}
    result = gwr.train_model(
        "unet3d", dirs[:3], dirs[3:], fp, tmp_path / "m", TINY, seed=1, device="cpu", threads=1
    )
    assert len(result.history) == 2 and "val_dice" in result.history
    assert calls == [(2, True), (1, False)]  # the ROI is the patch: whole ROIs, val once
    cts = [ct for ct, _ in cases.values()]
    preds = [tmp_path / "pred" / f"{p}.nii.gz" for p in cases]
    gwr.predict_cases("unet3d", result.model_path, dirs, cts, preds, fp, TINY, "cpu")
    pred = read_image(preds[0], dtype=None)
    ct = read_image(cts[0])
    assert pred.shape == ct.shape and np.allclose(pred.affine, ct.affine)
    assert set(np.unique(pred.data)) <= {0, 1, 2, 3, 4}
    refs = [out / "reference.nii.gz" for out in dirs]
    split = {"p0": "train", "p1": "train", "p2": "train", "p3": "val"}
    # the reference as a "prediction": Dice 1 and the same GWR
    dice_t, gwr_t = gwr.evaluate("ref", list(cases), split, cts, refs, refs, {"p0": 1}, 1.2)
    assert (dice_t.dice == 1).all() and len(dice_t) == 16
    assert np.allclose(gwr_t.gwr_true, gwr_t.gwr_pred)
    assert gwr_t.gwr_true.iloc[0] == pytest.approx((44 + 42) / (28 + 29), abs=0.05)
    assert gwr_t.poor_pred.tolist() == [0, 0, 0, 0] and gwr_t.poor_true.iloc[0] == 1
    assert pd.isna(gwr_t.poor_true.iloc[1])


def test_summary_is_table_1_layout():
    rows = [
        {"model": "m", "patient": p, "split": s, "structure": k, "dice": d}
        for p, s, d in [("a", "train", 0.9), ("b", "train", 0.8), ("c", "val", 0.5)]
        for k in ("cc", "cn")
    ]
    table = gwr.summarize(pd.DataFrame(rows))
    assert table.split.tolist() == ["train", "val", "all"]
    assert table.n.tolist() == [2, 1, 3]
    assert table.mean_dice.tolist() == pytest.approx([0.85, 0.5, 2.2 / 3])
    assert table.sd_dice.iloc[0] == pytest.approx(np.std([0.9, 0.8], ddof=1))


def test_outcomes_file_checks(tmp_path):
    assert gwr.read_outcomes(None) == {}
    good = tmp_path / "outcomes.csv"
    good.write_text("patient,poor_outcome\np001,1\np002,0\n")
    assert gwr.read_outcomes(good) == {"p001": 1, "p002": 0}
    bad = tmp_path / "bad.csv"
    bad.write_text("patient,poor_outcome\np001,yes\n")
    with pytest.raises(VoxflowError, match="bad.csv:2: poor_outcome .yes. is not 0 or 1"):
        gwr.read_outcomes(bad)
