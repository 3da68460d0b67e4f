import json

import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.images import read_image
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.phantoms.qq import QQPhantomConfig, make_qq_subject, qq_paths, write_qq_subject
from voxflow.physics import qq_model


@pytest.fixture(scope="module")
def brain():
    return make_brain("sub-001", 42, BrainPhantomConfig(voxel_mm=3.0))


@pytest.fixture(scope="module")
def subject(brain):
    return make_qq_subject(brain, 42)


def test_tissue_means_within_spec_ranges(brain, subject):
    m, mask = subject.maps, subject.mask.astype(bool)
    wm = mask & (brain.wm > 0.9)
    gm = mask & (brain.gm > 0.9)
    assert 12 <= np.median(m["R2"][wm]) <= 15
    assert 0.01 <= np.median(m["v"][wm]) <= 0.02
    assert 0.03 <= np.median(m["v"][gm]) <= 0.05
    assert -0.04 <= np.median(m["chi_nb"][wm]) <= -0.01
    assert np.median(m["S0"][wm]) == pytest.approx(1.0, abs=0.05)
    assert 0.5 <= np.median(m["Y"][mask]) <= 0.72
    # hypoxic regions: some tissue at Y <= 0.5
    assert 0 < np.mean(m["Y"][mask] < 0.5) < 0.3
    # CSF carries no venous blood
    csf = brain.mask.astype(bool) & (brain.csf > 0.95)
    assert np.all(m["v"][csf] < 3e-3)  # at most 5 % tissue there


def test_heterogeneity_is_smooth_within_tissue(brain, subject):
    y = subject.maps["Y"]
    wm = subject.mask.astype(bool) & (brain.wm > 0.9)
    assert y[wm].std() > 0.01  # not constant
    # neighbouring voxels correlate (smooth field, not white noise)
    a, b = y[:-1][wm[:-1] & wm[1:]], y[1:][wm[:-1] & wm[1:]]
    assert np.corrcoef(a, b)[0, 1] > 0.7


def test_data_follow_the_forward_model(subject):
    te = subject.echo_times
    np.testing.assert_allclose(te, qq_model.echo_times(8))
    mask = subject.mask.astype(bool)
    clean = qq_model.mgre_signal(*(subject.maps[p][mask] for p in qq_model.PARAMS), te)
    resid = subject.mgre[mask] - clean
    sigma = clean[:, 0].mean() / QQPhantomConfig().snr
    assert abs(resid[:, -1].std() / sigma - 1) < 0.1  # Rician ~ Gaussian at this SNR
    assert abs(resid.mean()) < 0.2 * sigma
    chi = qq_model.qsm_chi(*(subject.maps[p][mask] for p in ("Y", "v", "chi_nb")))
    assert np.std(subject.qsm[mask] - chi) == pytest.approx(0.005, rel=0.1)


def test_hypoxic_regions_central_and_sized(brain):
    from voxflow.phantoms.qq import hypoxic_regions
    from voxflow.seeding import rng

    w, target = hypoxic_regions(brain, rng(0, "t"), 3, 3.0, (10.0, 12.0), centre_fraction=0.2)
    half = (np.array(w.shape) - 1) / 2
    core = np.argwhere(w > 0.99)
    assert len(core) > 0 and np.all(np.abs(core - half).max(0) <= 0.2 * half + 1)  # near centres
    assert np.all((target[w > 0.5] >= 0.40) & (target[w > 0.5] <= 0.50))
    # an ellipsoid of radius <= 12 mm at 3 mm voxels holds at most (4/3) pi 4^3 ~ 268 core voxels
    assert (w > 0.5).sum() <= 3 * 300


def test_y_shift_and_texture_follow_the_config(brain):
    flat = make_qq_subject(
        brain, 42, QQPhantomConfig(y_subject_sd=0.0, y_texture_sd=0.0, hypoxic_max=0, hypoxic_min=0)
    )
    y = flat.maps["Y"][flat.mask.astype(bool)]
    np.testing.assert_allclose(y, QQPhantomConfig().y_mean, atol=1e-6)
    rough = make_qq_subject(
        brain, 42, QQPhantomConfig(y_texture_sd=0.03, hypoxic_max=0, hypoxic_min=0)
    )
    assert rough.maps["Y"][flat.mask.astype(bool)].std() == pytest.approx(0.03, rel=0.5)


def test_tissue_spread_and_texture_scale(brain):
    """tissue_spread 0: every subject gets the ranges' midpoints; texture_scale 0: no fields."""
    other = make_brain("sub-002", 42, BrainPhantomConfig(voxel_mm=3.0))

    def wm_r2(anat, **kw):
        sub = make_qq_subject(anat, 42, QQPhantomConfig(**kw))
        wm = sub.mask.astype(bool) & (anat.wm > 0.99)
        return sub.maps["R2"][wm]

    fixed = [wm_r2(a, tissue_spread=0.0, texture_scale=0.0) for a in (brain, other)]
    for r2 in fixed:  # the midpoint of 12-15 1/s (up to 1 % deep GM or CSF partial volume)
        assert np.median(r2) == pytest.approx(13.5, abs=0.05) and r2.std() < 0.1
    drawn = [np.median(wm_r2(a, tissue_spread=1.0)) for a in (brain, other)]
    assert abs(drawn[0] - drawn[1]) > 0.1, drawn  # per-subject tissue means
    half = wm_r2(brain, tissue_spread=0.0, texture_scale=0.5).std()
    full = wm_r2(brain, tissue_spread=0.0).std()
    assert half == pytest.approx(full / 2, rel=0.1)


def test_subjects_differ_and_are_reproducible(brain, subject):
    again = make_qq_subject(brain, 42)
    np.testing.assert_array_equal(again.mgre, subject.mgre)
    other = make_qq_subject(make_brain("sub-002", 42, BrainPhantomConfig(voxel_mm=3.0)), 42)
    assert not np.array_equal(other.maps["Y"], subject.maps["Y"])


def test_written_layout(tmp_path, small_brain):
    sub = make_qq_subject(small_brain, 1, QQPhantomConfig(n_echoes=7))
    paths = write_qq_subject(sub, tmp_path, "sub-001")
    assert paths == qq_paths(tmp_path, "sub-001")
    mgre = read_image(paths["mgre"])
    assert mgre.shape[-1] == 7
    np.testing.assert_allclose(json.loads(paths["echo_times"].read_text())[-1], 0.0345)
    np.testing.assert_allclose(read_image(paths["Y"]).data, sub.maps["Y"], atol=1e-6)


def test_config_checks():
    with pytest.raises(VoxflowError, match="n_echoes"):
        QQPhantomConfig(n_echoes=2)
    with pytest.raises(VoxflowError, match="snr"):
        QQPhantomConfig(snr=0)
