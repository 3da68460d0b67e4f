import numpy as np
import pandas as pd
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.atomic import write_npz
from voxflow.io.images import read_image, write_nifti
from voxflow.studies import l3


def test_window_stretch_maps_the_window_to_unit_range():
    out = l3.window_stretch(np.array([-1000.0, -200, 650, 1500, 3000]), [-200, 1500])
    np.testing.assert_allclose(out, [0, 0, 0.5, 1, 1])
    with pytest.raises(VoxflowError, match="window_hu"):
        l3.window_stretch(np.zeros(3), [100, 0])


@pytest.mark.parametrize("dz", [2.5, -2.5])
def test_preprocess_sorts_slices_feet_to_head_with_their_labels(tmp_path, dz):
    n = 12
    hu = np.zeros((20, 20, n), np.float32)
    for k in range(n):
        hu[:, :, k] = -200 + 100 * k  # brightness encodes the slice
    aff = np.diag([-1.5, -1.5, dz, 1.0])
    write_nifti(tmp_path / "ct.nii.gz", hu, aff)
    is_l3 = np.zeros(n, bool)
    is_l3[[5, 6, 7]] = True
    info = l3.preprocess_case(tmp_path / "ct.nii.gz", tmp_path / "p1.npz", is_l3, 16)
    assert info["images"].shape == (n, 16, 16) and info["images"].dtype == np.float16
    assert np.all(np.diff(info["z_mm"]) > 0)  # feet -> head
    assert info["slice_mm"] == pytest.approx(2.5)
    means = info["images"].reshape(n, -1).mean(1)
    k_of = np.round(means * 1700 / 100).astype(int)  # back to the volume slice index
    assert list(k_of) == (list(range(n)) if dz > 0 else list(range(n))[::-1])
    assert set(k_of[info["labels"] == 1]) == {5, 6, 7}
    saved = l3.load_case(tmp_path / "p1.npz")
    np.testing.assert_array_equal(saved["labels"], info["labels"])
    # the file is byte-identical on a rerun (its hash keys the tuning study)
    first = (tmp_path / "p1.npz").read_bytes()
    import time

    time.sleep(2.1)  # a zip member timestamp would differ now
    l3.preprocess_case(tmp_path / "ct.nii.gz", tmp_path / "p1.npz", is_l3, 16)
    assert (tmp_path / "p1.npz").read_bytes() == first
    assert read_image(tmp_path / "ct.nii.gz").shape == (20, 20, n)


def test_folds_are_patient_level_balanced_and_seeded():
    patients = [f"p{i:03d}" for i in range(1, 12)]
    a, b = l3.make_folds(patients, 1, 3), l3.make_folds(patients, 1, 3)
    pd.testing.assert_frame_equal(a, b)
    assert sorted(a["fold"].value_counts()) == [3, 4, 4]
    assert not a.equals(l3.make_folds(patients, 2, 3))
    with pytest.raises(VoxflowError, match="folds"):
        l3.make_folds(patients[:2], 1, 3)
    inner = l3.inner_split(patients[:8], 1, 0, 0.25)
    assert len(inner["val"]) == 2 and not set(inner["val"]) & set(inner["train"])
    with pytest.raises(VoxflowError, match="inner_val_fraction"):
        l3.inner_split(patients[:2], 1, 0, 0.1)


def test_decode_takes_the_centre_of_the_strongest_run():
    p = np.zeros(30)
    p[10:15] = 0.9  # the L3 run
    p[22:24] = 0.6  # a weaker run elsewhere
    centre, first, last = l3.decode(p, smooth_slices=1, threshold=0.5)
    assert (centre, first, last) == (12.0, 10, 14)
    p[15] = 0.9  # even length: a half-integer centre
    assert l3.decode(p, 1)[0] == 12.5
    # smoothing removes a single spike and bridges a one-slice gap
    q = np.zeros(30)
    q[[3]] = 1.0
    q[10:13] = 0.9
    q[14:17] = 0.9
    assert l3.decode(q, 3)[1:] == (10, 16)
    # nothing at the threshold: the most probable slice
    assert l3.decode(np.full(9, 0.1) + np.eye(9)[6] * 0.2, 1) == (6.0, 6, 6)
    with pytest.raises(VoxflowError, match="odd"):
        l3.decode(p, 2)
    with pytest.raises(VoxflowError, match="finite"):
        l3.decode(np.array([np.nan, 0.5]))


def test_summary_regression_and_errors():
    errors = pd.DataFrame(
        {
            "arm": ["a"] * 4 + ["b"] * 4,
            "true_slice": [10, 20, 30, 40] * 2,
            "pred_slice": [10, 20, 30, 40, 11, 20, 29, 40],
        }
    )
    errors["error_slices"] = (errors.pred_slice - errors.true_slice).abs()
    errors["error_mm"] = errors.error_slices * 3.0
    s = l3.summarize(errors).set_index("arm")
    assert s.loc["a", "mean_error"] == 0 and s.loc["a", "r2"] == pytest.approx(1.0)
    assert s.loc["a", "slope"] == pytest.approx(1.0) and s.loc["a", "intercept"] == pytest.approx(0)
    assert s.loc["b", "mean_error"] == 0.5 and s.loc["b", "mean_error_mm"] == 1.5
    assert 0.98 < s.loc["b", "r2"] < 1.0


def test_class_weight_interpolates_between_equal_and_balanced():
    import torch

    y = torch.tensor([[1.0]] * 2 + [[0.0]] * 18)
    assert l3.pos_weight(y, 0.0) == 1.0
    assert l3.pos_weight(y, 1.0) == pytest.approx(9.0)
    assert l3.pos_weight(y, 0.5) == pytest.approx(3.0)
    with pytest.raises(VoxflowError, match="no L3 slice"):
        l3.pos_weight(torch.zeros(5, 1), 0.5)


def test_case_labels_from_csv_or_mask_agree(tmp_path):
    n = 10
    aff = np.diag([-2.0, -2.0, -3.0, 1.0])  # slices stored head -> feet
    write_nifti(tmp_path / "ct.nii.gz", np.zeros((8, 8, n), np.float32), aff)
    csv = tmp_path / "l3_labels.csv"
    csv.write_text("patient,l3_first,l3_last,index_order\np1,2,4,feet_to_head\n")
    from_csv = l3.case_labels("p1", tmp_path / "ct.nii.gz", csv, {"source": "csv"}, ["p1"])
    # feet -> head indices 2..4 are volume slices 7..5 (k runs head -> feet here)
    assert list(np.flatnonzero(from_csv)) == [5, 6, 7]
    mask = np.zeros((8, 8, n), np.uint8)
    mask[2:5, 2:5, 5:8] = 29
    write_nifti(tmp_path / "vertebrae.nii.gz", mask, aff)
    labels = {"source": "mask", "l3_value": 29}
    from_mask = l3.case_labels(
        "p1", tmp_path / "ct.nii.gz", tmp_path / "vertebrae.nii.gz", labels, []
    )
    np.testing.assert_array_equal(from_csv, from_mask)
    bad = aff.copy()
    bad[0, 3] = 50.0
    write_nifti(tmp_path / "moved.nii.gz", mask, bad)
    with pytest.raises(VoxflowError):
        l3.case_labels("p1", tmp_path / "ct.nii.gz", tmp_path / "moved.nii.gz", labels, [])


def test_context_channels_pick_the_nearest_slices():
    case = {"z_mm": np.arange(10) * 3.0, "images": np.arange(10, dtype=np.float32)[:, None, None]}
    x = l3.with_context(case, [-6, 0, 6])
    assert x.shape == (10, 3, 1, 1)
    assert list(x[5, :, 0, 0]) == [3, 5, 7]
    assert list(x[0, :, 0, 0]) == [0, 0, 2]  # clamped at the feet end


def test_objective_is_one_over_the_per_slice_f1(tmp_path):
    labels = np.array([0, 0, 1, 1, 1, 0, 0], np.uint8)
    write_npz(tmp_path / "p1.npz", {"labels": labels, "images": np.zeros((7, 2, 2))})
    probs = {"p1": np.array([0.1, 0.6, 0.9, 0.8, 0.2, 0.1, 0.0])}  # tp 2, fp 1, fn 1
    f1 = l3.f1(probs, [tmp_path / "p1.npz"], 0.5)
    assert f1 == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert l3.objective_value(f1) == pytest.approx(1 / f1)
    assert l3.objective_value(0.0) == 1000.0
