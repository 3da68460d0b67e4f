from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from shared_data import OPEN_MS, needs

from voxflow.errors import VoxflowError
from voxflow.io.images import read_image, write_nifti
from voxflow.io.layouts.ms import read_cohort
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.phantoms.ms import make_ms_subject, write_isbi2015
from voxflow.preprocess.crop import foreground
from voxflow.studies import ms

CHANNELS = ["flair", "mprage", "pd", "t2"]
TINY = {
    "augment": {"flip": 0.5, "noise": 0.5},
    "patch_size": 16,
    "samples_per_volume": 2,
    "batch_size": 2,
    "model": {"base_filters": 4, "depth": 2, "dropout": 0.1},
    "train": {"epochs": 2, "lr": 1e-3, "patience": 0},
    "patch_overlap": 4,
    "threshold": 0.5,
}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Six phantom subjects at 6 mm, preprocessed."""
    root = tmp_path_factory.mktemp("ms")
    for i in range(1, 7):
        brain = make_brain(f"sub-{i:03d}", 5, BrainPhantomConfig(voxel_mm=6.0))
        write_isbi2015(make_ms_subject(brain, 5), root / "raw", i)
    dirs = []
    for case in read_cohort("isbi2015", root / "raw"):
        ms.preprocess_case(case, root / "pre" / case.case)
        dirs.append(root / "pre" / case.case)
    return root, dirs


def test_preprocess_crops_and_normalises(cohort):
    root, dirs = cohort
    raw = read_image(root / "raw/training/training01/masks/training01_01_mask1.nii", dtype=None)
    mask = read_image(dirs[0] / "mask.nii.gz", dtype=None)
    assert all(a <= b for a, b in zip(mask.shape, raw.shape, strict=True))
    assert mask.data.sum() == raw.data.sum()  # no lesion voxel lost
    flair = read_image(dirs[0] / "flair.nii.gz")
    pre = root / "raw/training/training01/preprocessed"
    raw_fg = [foreground(read_image(pre / f"training01_01_{ch}_pp.nii").data) for ch in CHANNELS]
    start = np.round(np.linalg.inv(raw.affine) @ mask.affine[:, 3])[:3].astype(int)
    box = tuple(slice(a, a + n) for a, n in zip(start, flair.shape, strict=True))
    head = np.logical_or.reduce(raw_fg)[box]  # the head: any channel's foreground
    # peak-normalised: the WM peak (the histogram's mode in the head) sits at 0
    counts, edges = np.histogram(flair.data[head], bins=np.arange(-10.25, 10.5, 0.5))
    assert abs(edges[np.argmax(counts)] + 0.25) <= 1.0
    z = ms.preprocess_case(read_cohort("isbi2015", root / "raw")[0], root / "z", normalise="zscore")
    zf = read_image(z["flair"]).data
    assert float(zf[head].mean()) == pytest.approx(0, abs=0.05)  # z-scored in the head
    assert float(zf[head].std()) == pytest.approx(1, abs=0.15)
    with pytest.raises(VoxflowError, match="normalise"):
        ms.preprocess_case(read_cohort("isbi2015", root / "raw")[0], root / "x", normalise="x")
    # world position of the lesions is unchanged by the crop
    c_raw = raw.affine @ np.r_[np.argwhere(raw.data).mean(0), 1]
    c_new = mask.affine @ np.r_[np.argwhere(mask.data).mean(0), 1]
    assert np.allclose(c_raw, c_new, atol=1e-3)


def test_preprocess_refuses_bad_mask(tmp_path, cohort):
    root, _ = cohort
    (case,) = [c for c in read_cohort("isbi2015", root / "raw") if c.case == "training02_01"]
    m = read_image(case.mask, dtype=None)
    bad = tmp_path / "mask.nii"
    write_nifti(bad, (m.data * 2).astype(np.uint8), m.affine)
    with pytest.raises(VoxflowError, match="must be binary"):
        ms.preprocess_case(ms.MSCase(case.case, case.channels, bad), tmp_path / "out")


def test_split_is_seeded_and_complete():
    cases = [f"c{i:02d}" for i in range(21)]
    a = ms.make_split(cases, 42, {"train": 0.8, "val": 0.1, "test": 0.1})
    assert a.equals(ms.make_split(cases[::-1], 42, {"train": 0.8, "val": 0.1, "test": 0.1}))
    assert a["split"].value_counts().to_dict() == {"train": 17, "test": 2, "val": 2}
    assert not a.equals(ms.make_split(cases, 43, {"train": 0.8, "val": 0.1, "test": 0.1}))
    with pytest.raises(VoxflowError, match="at least 3"):
        ms.make_split(["a", "b"], 1, {"train": 0.8, "val": 0.1, "test": 0.1})


@pytest.mark.slow
@pytest.mark.parametrize("model", ["resunet3d", "unet3d"])
def test_train_and_evaluate_smoke(cohort, tmp_path, model):
    _, dirs = cohort
    cfg = TINY
    res = ms.train_model(model, ms.MULTI, CHANNELS, dirs[:4], dirs[4:5], tmp_path, cfg, 1, "cpu", 1)
    assert Path(res.model_path).is_file() and len(res.history) == 2
    df, preds = ms.evaluate_model(model, ms.MULTI, CHANNELS, res.model_path, dirs[5:], cfg, "cpu")
    assert list(df.columns) == ["model", "channel", "case", "dsc", "iou", "hd95_mm", "lesion_f1"]
    assert 0 <= df["dsc"].iloc[0] <= 1
    prob = preds[dirs[5].name]
    assert prob.shape == read_image(dirs[5] / "mask.nii.gz").shape
    assert 0 <= prob.min() and prob.max() <= 1


@pytest.mark.slow
@needs(OPEN_MS)
def test_open_ms_data_patient26_real_check(cohort, tmp_path):
    """The real open_ms_data layout goes through the same preprocessing (resampled to the
    model's 6 mm) and sliding-window inference as the phantoms, with phantom-trained models."""
    _, dirs = cohort
    (case,) = read_cohort("open_ms_data", OPEN_MS)
    assert {"flair", "mprage", "t2"} <= set(case.channels)
    out = tmp_path / "pre" / case.case
    paths = ms.preprocess_case(case, out, spacing_mm=6.0)
    mask = read_image(paths["mask"], dtype=None)
    assert mask.spacing == pytest.approx((6.0, 6.0, 6.0))
    assert 0 < mask.data.sum() and set(np.unique(mask.data)) <= {0, 1}
    flair = read_image(paths["flair"])
    assert flair.shape == mask.shape and np.isfinite(flair.data).all()
    # world geometry kept: the lesion centroid moves by less than a voxel
    real = read_image(case.mask, dtype=None)
    c_real = real.affine @ np.r_[np.argwhere(real.data > 0).mean(0), 1]
    c_new = mask.affine @ np.r_[np.argwhere(mask.data).mean(0), 1]
    assert np.linalg.norm(c_real - c_new) < 6.0

    # the real check: a multi-channel model trained with channel dropout runs on the three
    # channels patient26 has; a PD model is skipped; scores are on the native 1 mm grid
    tiny = {**TINY, "channel_dropout": 0.5}
    multi = ms.train_model(
        "resunet3d", ms.MULTI, CHANNELS, dirs[:4], dirs[4:5], tmp_path / "m", tiny, 1, "cpu", 1
    )
    flair = ms.train_model(
        "unet3d", "flair", CHANNELS, dirs[:4], dirs[4:5], tmp_path / "f", tiny, 1, "cpu", 1
    )
    table = ms.real_check(
        [
            ("resunet3d", ms.MULTI, multi.model_path),
            ("unet3d", "flair", flair.model_path),
            ("unet3d", "pd", flair.model_path),
        ],
        CHANNELS,
        [out],
        {"patient26": case.mask},
        {"flair": ms.tune_threshold(dirs[:4], "flair")},
        tiny,
        "cpu",
    )
    assert table[["model", "channel", "channels_used"]].values.tolist() == [
        ["resunet3d", "multi", "flair+mprage+t2"],
        ["unet3d", "flair", "flair"],
        ["threshold", "flair", "flair"],
    ]
    assert table["case"].unique().tolist() == ["patient26"]
    assert table["dsc"].between(0, 1).all() and table["lesion_f1"].between(0, 1).all()


def test_tune_threshold_finds_dark_lesions(tmp_path):
    """Hypointense lesions (MPRAGE black holes) get sign -1 and a threshold between lesion and
    tissue, whatever the value range."""
    g = np.random.default_rng(0)
    dirs = []
    for i in range(3):
        d = tmp_path / f"c{i}"
        mask = np.zeros((20, 20, 20), np.uint8)
        mask[5:9, 5:9, 5:9] = 1
        x = g.normal(0, 0.5, mask.shape).astype(np.float32) - 6.0 * mask
        write_nifti(d / "mprage.nii.gz", x, np.eye(4))
        write_nifti(d / "mask.nii.gz", mask, np.eye(4))
        dirs.append(d)
    rule = ms.tune_threshold(dirs, "mprage")
    assert rule["sign"] == -1 and -5.0 < rule["threshold"] < -1.0
    x = read_image(dirs[0] / "mprage.nii.gz").data
    assert ms.apply_threshold(x, rule).sum() == pytest.approx(64, abs=3)


def test_native_metrics_score_on_the_raters_grid(tmp_path):
    """A coarse prediction is interpolated onto the native mask's grid before scoring."""
    native = np.zeros((36, 36, 36), np.uint8)
    native[9:27, 9:27, 9:27] = 1
    path = write_nifti(tmp_path / "mask.nii.gz", native, np.eye(4))
    coarse = np.zeros((12, 12, 12), np.float32)
    coarse[3:9, 3:9, 3:9] = 1.0
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    affine[:3, 3] = 1.0  # voxel centres of a 3 mm grid over the same 36 mm
    m = ms.native_metrics(coarse, affine, path, 0.5)
    assert m["dsc"] > 0.9
    shifted = affine.copy()
    shifted[0, 3] += 9.0
    assert ms.native_metrics(coarse, shifted, path, 0.5)["dsc"] < m["dsc"] - 0.2


def test_threshold_baseline_and_summary(cohort):
    _, dirs = cohort
    base, rule = ms.threshold_baseline(dirs[:4], dirs[4:], "flair")
    assert base["model"].unique().tolist() == ["threshold"] and len(base) == 2
    assert base["dsc"].mean() > 0.3  # FLAIR lesions are hyperintense
    assert rule["sign"] == 1 and rule["threshold"] > 0  # above the WM peak
    per_case = pd.concat([base, base.assign(model="x", dsc=0.0, hd95_mm=float("inf"))])
    table = ms.summarize(per_case)
    assert table["model"].tolist() == ["threshold", "x"]
    assert table.loc[0, "dsc"] == pytest.approx(base["dsc"].mean())
    assert table.loc[0, "n_test"] == 2 and table.loc[1, "hd95_mm"] == float("inf")
