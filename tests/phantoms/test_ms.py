import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from voxflow.errors import VoxflowError
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.phantoms.ms import (
    CHANNELS,
    CONTRASTS,
    MSPhantomConfig,
    isbi2015_paths,
    make_ms_subject,
    place_lesions,
    write_isbi2015,
)


@pytest.fixture(scope="module")
def brain():
    return make_brain("sub-001", 42, BrainPhantomConfig(voxel_mm=3.0))


@pytest.fixture(scope="module")
def subject(brain):
    return make_ms_subject(brain, 42)


def test_lesions_only_in_wm_with_burden_in_range(brain):
    cfg = MSPhantomConfig(lesions_min=20, lesions_max=20, periventricular=1.0, infratentorial=0.0)
    labels, n = place_lesions(brain, 1, cfg)
    mask = labels > 0
    assert labels.max() == n and 15 <= n <= 20  # lesions clipped away by WM do not count
    assert np.all(brain.wm[mask] > 0.5)
    _, components = ndimage.label(mask, np.ones((3, 3, 3)))
    assert 1 <= components <= n
    # periventricular: every lesion voxel close to the ventricles (<= 5 mm + lesion size)
    vent = (brain.csf > 0.5) & (ndimage.distance_transform_edt(brain.mask, sampling=3.0) > 15)
    dist = ndimage.distance_transform_edt(~vent, sampling=3.0)
    assert np.median(dist[mask]) <= 8.0


def test_contrasts_follow_physics_table(subject, brain):
    les = subject.mask1.astype(bool)
    wm = (brain.wm > 0.9) & ~les
    gm = brain.gm > 0.9
    for ch in CHANNELS:
        img = subject.images[ch]
        gm_ratio = img[gm].mean() / img[wm].mean()
        assert gm_ratio == pytest.approx(CONTRASTS[ch]["gm"], rel=0.1), ch
        lo, hi = CONTRASTS[ch]["lesion"]
        les_ratio = img[les].mean() / img[wm].mean()
        # partial volume pulls small lesions towards WM
        assert min(1.0, lo) * 0.9 <= les_ratio <= max(1.0, hi) * 1.1, ch
    assert subject.images["flair"][les].mean() > 1.3 * subject.images["flair"][wm].mean()
    assert subject.images["mprage"][les].mean() < subject.images["mprage"][wm].mean()


def test_noise_is_rician_in_background(subject, brain):
    bg = subject.images["t2"][~brain.mask.astype(bool)]
    assert bg.min() >= 0 and 0 < bg.mean() < 0.1 * subject.images["t2"].max()


def test_deterministic_and_second_rater_differs(brain, subject):
    again = make_ms_subject(brain, 42)
    assert np.array_equal(again.images["flair"], subject.images["flair"])
    assert np.array_equal(again.mask1, subject.mask1)
    other = make_ms_subject(brain, 43)
    assert not np.array_equal(other.mask1, subject.mask1)
    assert not np.array_equal(subject.mask2, subject.mask1)
    overlap = (
        2 * (subject.mask1 & subject.mask2).sum() / (subject.mask1.sum() + subject.mask2.sum())
    )
    assert overlap > 0.4


def test_isbi2015_layout(tmp_path, subject):
    paths = write_isbi2015(subject, tmp_path, 3)
    assert paths == isbi2015_paths(tmp_path, 3)
    rel = sorted(str(p.relative_to(tmp_path)) for p in paths.values())
    assert "training/training03/preprocessed/training03_01_flair_pp.nii" in rel
    assert "training/training03/masks/training03_01_mask1.nii" in rel
    m = nib.load(paths["mask1"])
    assert np.array_equal(np.asarray(m.dataobj), subject.mask1)
    assert np.allclose(m.affine, subject.affine)


def test_bad_config():
    with pytest.raises(VoxflowError, match="lesions_min"):
        MSPhantomConfig(lesions_min=10, lesions_max=5)
