import numpy as np
import pandas as pd
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.layouts.qq import QQData
from voxflow.models.resnet_qq import QQResNet3D, build_qq_model
from voxflow.studies import qq


def _data(shape=(20, 22, 10), n_e=8):
    rng = np.random.default_rng(0)
    gt = {p: rng.uniform(0.1, 1, shape).astype(np.float32) for p in qq.GT_MAPS}
    mask = np.zeros(shape, bool)
    mask[5:15, 5:15, 3:7] = True
    return QQData(
        "sub-001",
        rng.uniform(0, 1, shape + (n_e,)).astype(np.float32),
        rng.normal(0, 0.01, shape).astype(np.float32),
        mask,
        gt,
        np.arange(n_e) * 0.005 + 0.0045,
        np.diag([2.0, 2.0, 3.0, 1.0]),
    )


def test_crop_is_centred_and_shifts_the_affine():
    data = _data()
    c = qq.crop_case(data, [10, 12, 4])
    assert c["inputs"].shape == (9, 10, 12, 4) and c["targets"].shape == (5, 10, 12, 4)
    np.testing.assert_array_equal(c["inputs"][8], data.qsm[5:15, 5:17, 3:7])
    np.testing.assert_array_equal(c["inputs"][0], data.mgre[5:15, 5:17, 3:7, 0])
    np.testing.assert_allclose(c["affine"][:3, 3], [10.0, 10.0, 9.0])
    assert qq.crop_slices((8, 8, 8), [350, 350, 40]) == (slice(0, 8),) * 3  # clipped


def test_crop_without_mask_voxels_is_an_error():
    data = _data()
    data.mask[:] = False
    data.mask[0, 0, 0] = True  # tissue only in a corner
    with pytest.raises(VoxflowError, match="enlarge qq.crop"):
        qq.crop_case(data, [4, 4, 4])


def test_split_is_seeded_and_disjoint():
    subjects = [f"sub-{i:03d}" for i in range(1, 16)]
    a = qq.make_split(subjects, 42, 5, 2)
    assert a.split.value_counts().to_dict() == {"train": 8, "test": 5, "val": 2}
    pd.testing.assert_frame_equal(a, qq.make_split(subjects, 42, 5, 2))
    assert not a.equals(qq.make_split(subjects, 7, 5, 2))
    with pytest.raises(VoxflowError, match="lower qq.split"):
        qq.make_split(subjects[:6], 42, 5, 1)


def test_normalisation_uses_only_the_given_subjects(tmp_path):
    folders = []
    for i, scale in enumerate([1.0, 3.0]):
        d = _data()
        d.mgre *= scale
        f = tmp_path / f"s{i}"
        qq.write_cropped(qq.crop_case(d, [20, 22, 10]), f)
        folders.append(f)
    one = qq.normalisation(folders[:1])
    both = qq.normalisation(folders)
    assert both["inputs_mean"][0] == pytest.approx(2 * one["inputs_mean"][0], rel=1e-5)
    assert len(one["targets_std"]) == 5


def test_log_inputs_make_relaxation_linear_and_leave_qsm(tmp_path):
    d = _data()
    c = qq.crop_case(d, [20, 22, 10])
    x = qq.network_inputs(c["inputs"], "log")
    np.testing.assert_allclose(x[:8], np.log(c["inputs"][:8]), rtol=1e-6)
    np.testing.assert_array_equal(x[8], c["inputs"][8])  # QSM as is
    assert np.isfinite(qq.network_inputs(np.zeros((3, 2, 2, 2)), "log")).all()  # floored
    assert qq.network_inputs(c["inputs"], "none") is c["inputs"]
    with pytest.raises(VoxflowError, match="input_transform"):
        qq.network_inputs(c["inputs"], "sqrt")
    # the statistics are those of the transformed channels, and name the transform
    f = tmp_path / "s"
    qq.write_cropped(c, f)
    norm = qq.normalisation([f], "log")
    assert norm["input_transform"] == "log"
    assert norm["inputs_mean"][0] == pytest.approx(np.log(c["inputs"][0][c["mask"]]).mean(), 1e-5)


def test_score_oef_in_percentage_points():
    truth = np.zeros((5, 4, 4, 4))
    truth[2] = 0.6
    pred = truth.copy()
    pred[2] = 0.6 - 0.0098  # Y off by 0.0098 -> OEF off by 1 point
    mask = np.ones((4, 4, 4), bool)
    row = qq.score(pred, truth, mask)
    assert row["Y"] == pytest.approx(0.0098) and row["oef"] == pytest.approx(1.0)
    assert row["S0"] == 0


def test_train_mean_reference_scores_the_training_means(tmp_path):
    d = _data()
    folder = tmp_path / "sub-001"
    qq.write_cropped(qq.crop_case(d, [20, 22, 10]), folder)
    norm = qq.normalisation([folder])
    rows = qq.train_mean_rows([folder], norm)
    assert rows.model.tolist() == ["train_mean"] and rows.seconds.tolist() == [0.0]
    m = d.mask
    for i, p in enumerate(qq.GT_MAPS):  # predicting its own mean: RMSE = SD in the mask
        assert rows[p].iloc[0] == pytest.approx(d.gt[p][m].std(), rel=1e-3), p
        assert norm["targets_mean"][i] == pytest.approx(d.gt[p][m].mean(), rel=1e-4)


def test_summarize_tables_layout():
    per = pd.DataFrame(
        [
            {"model": m, "subject": s, **dict.fromkeys(qq.GT_MAPS, v), "oef": v, "seconds": 1.0}
            for m, v in (("resnet3d", 1.0), ("cnn3d", 2.0))
            for s in ("a", "b")
        ]
    )
    table, oef = qq.summarize(per)
    assert list(table.columns) == qq.TABLE_COLUMNS
    assert table.subject.tolist() == ["a", "b", "mean", "a", "b", "mean"]
    assert oef.to_dict("list") == {"model": ["resnet3d", "cnn3d"], "oef_rmse": [1.0, 2.0]}


def test_models_follow_the_paper():
    import torch

    net = QQResNet3D()
    convs3 = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.kernel_size[0] == 3]
    assert len(convs3) == 1 + 4 * 3  # stem + four blocks of three
    shortcuts = [b.shortcut for b in net.blocks]
    assert [type(s).__name__ for s in shortcuts] == ["Identity", "Identity", "Conv3d", "Identity"]
    assert net.head.out_channels == 5 and net.head.kernel_size == (1, 1, 1)
    x = torch.randn(1, 9, 8, 8, 4)
    assert net(x).shape == (1, 5, 8, 8, 4)
    plain = build_qq_model("cnn3d")
    assert all(not b.residual for b in plain.blocks)
    with pytest.raises(VoxflowError, match="unknown"):
        build_qq_model("resnet50")
