import numpy as np
import pandas as pd
import pytest
import torch

from voxflow.errors import VoxflowError
from voxflow.io.images import write_nifti
from voxflow.studies import mgmt

SERIES = ("FLAIR", "T1w", "T1wCE", "T2w")
CFG = {
    "series": "T1wCE",
    "series_2d": "T1wCE",
    "preprocess": {
        "mode": "paper",
        "size": 16,
        "spacing_mm": 8.0,
        "slices_2d": 4,
        "image_size_2d": 16,
    },
}


def volume(shape=(40, 30, 12), blank_ends=True):
    x = np.zeros(shape, np.float32)
    x[10:30, 8:22, 2:10] = 100.0
    x[18:22, 12:16, 4:8] = 300.0
    if not blank_ends:
        x += 1
    return x


def niftis(tmp_path, data, affine=None):
    affine = np.diag([2.0, 2.0, 5.0, 1.0]) if affine is None else affine
    return {s: write_nifti(tmp_path / f"{s}.nii.gz", data, affine) for s in SERIES}


def test_preprocess_paper_mode(tmp_path):
    shapes = mgmt.preprocess_patient(niftis(tmp_path, volume()), tmp_path / "p.npz", CFG)
    case = mgmt.load_case(tmp_path / "p.npz")
    assert shapes == {"volume": (1, 16, 16, 16), "slices": (4, 16, 16)}
    v = case["volume"][0]
    assert v.min() >= 0 and v.max() <= 1 and v.max() > 0.5
    # the paper's way keeps each axis's direction: the bright block stays off-centre in x
    assert np.argmax(v.max(axis=(1, 2))) in range(7, 10)


def test_slices_2d_drop_blank_slices():
    x = volume()  # slices 0-1 and 10-11 are blank
    s = mgmt.slices_2d(mgmt.minmax(x, "x"), 0, 8)
    assert s.shape == (8, 8, 8)  # the 8 non-blank slices of 12
    assert (s.reshape(8, -1).max(axis=1) > 0).all()
    assert mgmt.slices_2d(mgmt.minmax(x, "x"), 3, 8).shape == (3, 8, 8)


def test_blank_or_non_finite_series_is_named(tmp_path):
    paths = niftis(tmp_path, np.zeros((8, 8, 8), np.float32))
    with pytest.raises(VoxflowError, match=r"T1wCE.nii.gz: blank series"):
        mgmt.preprocess_patient(paths, tmp_path / "p.npz", CFG)
    x = volume()
    x[0, 0, 0] = np.nan
    with pytest.raises(VoxflowError, match=r"T1wCE.nii.gz.*NaN"):
        mgmt.preprocess_patient(niftis(tmp_path, x), tmp_path / "p.npz", CFG)
    assert not (tmp_path / "p.npz").exists()


def test_resample_mode_gives_the_same_volume_for_any_plane(tmp_path):
    cfg = {**CFG, "preprocess": {**CFG["preprocess"], "mode": "resample"}}
    x = volume((24, 24, 24))
    axial = np.diag([4.0, 4.0, 4.0, 1.0])
    # the same object stored as a sagittal stack: axes permuted, affine permuted accordingly
    sag = np.zeros((4, 4))
    sag[:3, :3] = axial[:3, :3][:, [2, 0, 1]]
    sag[3, 3] = 1
    a = mgmt.preprocess_patient(niftis(tmp_path / "a", x, axial), tmp_path / "a.npz", cfg)
    b = mgmt.preprocess_patient(
        niftis(tmp_path / "b", np.transpose(x, (2, 0, 1)).copy(), sag), tmp_path / "b.npz", cfg
    )
    assert a == b
    va, vb = (
        mgmt.load_case(tmp_path / "a.npz")["volume"],
        mgmt.load_case(tmp_path / "b.npz")["volume"],
    )
    np.testing.assert_allclose(va, vb, atol=1e-5)


def test_splits_are_the_papers():
    from sklearn.model_selection import StratifiedKFold, train_test_split

    labels = {f"{i:05d}": int(i % 3 == 0) for i in range(60)}
    df = mgmt.make_splits(labels, seed=1, holdout=0.2, folds=5, random_state=42)
    assert (df.role == "holdout").sum() == 12 and set(df.fold) == {-1, 0, 1, 2, 3, 4}
    # stratified: each part has the cohort's methylated share (1/3)
    for _, part in df.groupby("fold"):
        assert abs(part.MGMT_value.mean() - 1 / 3) < 0.1
    # the paper's code: train_test_split, then StratifiedKFold(5, shuffle, 42) on its order
    ids = sorted(labels)
    y = [labels[i] for i in ids]
    train, test = train_test_split(ids, test_size=0.2, stratify=y, random_state=1)
    assert set(test) == set(df.BraTS21ID[df.role == "holdout"])
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=42)
    fold = dict(zip(df.BraTS21ID, df.fold, strict=True))
    for k, (_, val) in enumerate(skf.split(np.zeros(len(train)), [labels[i] for i in train])):
        assert {train[i] for i in val} == {i for i in train if fold[i] == k}
    tr, te = mgmt.split_ids(df, "fold2")
    assert not set(tr) & set(te) and len(tr) + len(te) == 48
    tr, te = mgmt.split_ids(df, "final")
    assert len(tr) == 48 and set(te) == set(df.BraTS21ID[df.role == "holdout"])
    with pytest.raises(VoxflowError, match="fold7 does not exist"):
        mgmt.split_ids(df, "fold7")
    with pytest.raises(VoxflowError, match="too few"):
        mgmt.make_splits({f"{i:05d}": int(i == 0) for i in range(30)}, 1, 0.2, 5, 42)


def toy_cases(n=16, size=8):
    """A bright cube means methylated: learnable in a few epochs."""
    g = np.random.default_rng(0)
    cases = {}
    for i in range(n):
        y = i % 2
        v = g.random((1, size, size, size), dtype=np.float32) * 0.2
        if y:
            v[:, 2:6, 2:6, 2:6] += 0.8
        cases[f"{i:05d}"] = {"volume": v, "slices": v[0, :, :, 2:6].transpose(2, 0, 1), "label": y}
    return cases


@pytest.mark.parametrize("kind", ["2d", "3d"])
def test_train_and_predict(kind, tmp_path):
    cases = toy_cases()
    ids = sorted(cases)
    cfg = {
        "models": {kind: {"depth": 10, "widen_factor": 0.125, "batch_size": 4}},
        "train": {"epochs": 3, "lr": 3e-3},
        "augment": {"flip": 0.5},
    }
    model, result = mgmt.train_model(kind, cases, ids[:12], ids[12:], cfg, 0, tmp_path)
    assert len(result.history) == 3 and (tmp_path / "model.pt").is_file()
    # keep=last: model.pt holds the last epoch's weights
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(saved[k].float(), v.cpu().float())
    pred = mgmt.predict(model, cases, ids[12:], kind)
    assert list(pred.columns) == ["BraTS21ID", "MGMT_value", "score"] and len(pred) == 4
    assert pred.score.between(0, 1).all()


def test_2d_patient_score_is_the_mean_of_its_slices():
    class Const(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x):  # logit difference = mean intensity of the slice
            m = x.mean(dim=(1, 2, 3))
            return torch.stack([torch.zeros_like(m), m], 1)

    cases = {
        "00001": {
            "slices": np.stack([np.full((4, 4), v, np.float32) for v in (0, 1, 2)]),
            "label": 1,
        }
    }
    pred = mgmt.predict(Const(), cases, ["00001"], "2d")
    expect = np.mean([1 / (1 + np.exp(-v)) for v in (0, 1, 2)])
    assert pred.score.iloc[0] == pytest.approx(expect)


def test_tables_oracle_and_bootstrap(tmp_path):
    g = np.random.default_rng(1)
    y = np.array([0, 1] * 20)
    good = pd.DataFrame(
        {
            "BraTS21ID": [f"{i:05d}" for i in range(40)],
            "MGMT_value": y,
            "score": np.clip(y * 0.6 + g.random(40) * 0.5, 0, 1),
        }
    )
    noise = good.assign(score=g.random(40))
    folds = mgmt.fold_table({("3d", 0): good, ("3d", 1): noise, ("2d", 0): noise, ("2d", 1): noise})
    assert list(folds.columns) == ["model", "fold", "accuracy", "precision", "recall", "f1", "auc"]
    s = mgmt.summary(folds)
    auc3 = s[(s.model == "3d") & (s.metric == "auc")].iloc[0]
    assert auc3["mean"] == pytest.approx(folds[folds.model == "3d"].auc.mean())
    assert auc3["std"] == pytest.approx(folds[folds.model == "3d"].auc.std(ddof=1))
    lo, hi = mgmt.bootstrap_auc(noise, seed=0, n=500)
    assert lo < 0.5 < hi
    lo, hi = mgmt.bootstrap_auc(good, seed=0, n=500)
    assert 0.8 < lo <= hi <= 1
    planted = pd.DataFrame(
        {
            "BraTS21ID": [int(i) for i in good.BraTS21ID],
            "MGMT_value": y,
            "score": y * 3.0 + g.normal(0, 1, 40),
        }
    )
    oracle = mgmt.oracle_predictions(planted, list(good.BraTS21ID[:10]), 3.0)
    assert list(oracle.MGMT_value) == list(y[:10])
    assert ((oracle.score > 0.5) == (planted.score[:10] > 1.5)).all()
    table = mgmt.holdout_table({"3d": good, "oracle": oracle}, seed=0, n_boot=200)
    assert list(table.model) == ["3d", "oracle"] and (table.auc_low <= table.auc).all()
    assert mgmt.plot_roc({"3d": good, "oracle": oracle}, tmp_path / "roc.png").stat().st_size > 5000
    assert mgmt.plot_confusion(good, "3d fold0", tmp_path / "cm.png").stat().st_size > 5000


def test_shards_are_stable_and_cases_checked(tmp_path):
    assert mgmt.shard_of("00109", 4) == mgmt.shard_of("00109", 4)
    ids = [f"{i:05d}" for i in range(200)]
    counts = np.bincount([mgmt.shard_of(i, 4) for i in ids])
    assert counts.min() > 30
    splits = pd.DataFrame({"BraTS21ID": [1, 2], "MGMT_value": [0, 1]})
    (tmp_path / "s0").mkdir()
    from voxflow.io.atomic import write_npz

    write_npz(tmp_path / "s0" / "00001.npz", {"volume": np.zeros((1, 2, 2, 2))})
    with pytest.raises(VoxflowError, match="patient 00002 was not ingested"):
        mgmt.load_cases([tmp_path / "s0"], splits)
