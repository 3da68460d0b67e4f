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
    slice_blur,
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


def test_contrasts_drawn_within_calibrated_ranges(subject, brain):
    les = subject.mask1.astype(bool)
    wm = (brain.wm > 0.9) & ~les
    gm = brain.gm > 0.9
    for ch in CHANNELS:
        img = subject.images[ch]
        lo, hi = CONTRASTS[ch]["gm"]
        gm_ratio = img[gm].mean() / img[wm].mean()
        assert 0.9 * lo <= gm_ratio <= 1.1 * hi, ch
        lo, hi = CONTRASTS[ch]["lesion"]
        assert lo <= subject.lesion_ratio[ch] <= hi, ch
        les_ratio = img[les].mean() / img[wm].mean()
        # partial volume and the per-lesion spread pull lesions towards WM
        assert min(1.0, lo) * 0.85 <= les_ratio <= max(1.0, hi) * 1.15, ch
    assert subject.images["flair"][les].mean() > 1.1 * subject.images["flair"][wm].mean()
    assert subject.images["mprage"][les].mean() < subject.images["mprage"][wm].mean()


def test_contrasts_are_randomised_per_subject(brain, subject):
    """Domain randomisation: another seed draws other tissue contrasts on the same anatomy."""
    other = make_ms_subject(brain, 7)
    assert all(other.lesion_ratio[ch] != subject.lesion_ratio[ch] for ch in CHANNELS)
    gm = brain.gm > 0.9
    wm = (brain.wm > 0.9) & ~(subject.mask1 | other.mask1).astype(bool)
    ratios = [s.images["t2"][gm].mean() / s.images["t2"][wm].mean() for s in (subject, other)]
    assert abs(ratios[0] - ratios[1]) > 0.01


def test_slice_blur_only_along_one_axis():
    g = np.random.default_rng(0)
    x = np.zeros((9, 9, 9), np.float32)
    x[4, 4, 4] = 1.0
    cfg = MSPhantomConfig(slice_mm=(6.0, 6.0))
    out = slice_blur(x, 2.0, g, cfg)
    spread = [
        int((out.sum(axis=tuple(a for a in range(3) if a != k)) > 1e-3).sum()) for k in range(3)
    ]
    assert sorted(spread) == [1, 1, max(spread)] and max(spread) > 1
    assert out.sum() == pytest.approx(1.0, rel=1e-4)
    assert slice_blur(x, 2.0, g, MSPhantomConfig(slice_mm=(1.0, 2.0))) is x  # not thicker


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


def test_write_cohort_same_with_any_number_of_workers(tmp_path):
    from voxflow.phantoms.brain import load_template
    from voxflow.phantoms.ms import write_cohort

    cfg = BrainPhantomConfig(voxel_mm=6.0)
    template = load_template(6.0)
    one = write_cohort(tmp_path / "a", 3, 5, cfg, template, workers=1)
    two = write_cohort(tmp_path / "b", 3, 5, cfg, template, workers=2)
    assert one == two and [s["case"] for s in one] == [f"training0{i}_01" for i in (1, 2, 3)]
    for i in (1, 2, 3):
        a, b = isbi2015_paths(tmp_path / "a", i), isbi2015_paths(tmp_path / "b", i)
        assert all(a[k].read_bytes() == b[k].read_bytes() for k in a)
