import numpy as np
import pytest
import torch
import torchio as tio

from voxflow.augment import ORDER, build_augmentation, patch_queue
from voxflow.errors import VoxflowError


def _subject(seed=0):
    g = np.random.default_rng(seed)
    img = g.normal(100, 10, (1, 24, 24, 24)).astype(np.float32)
    lab = np.zeros((1, 24, 24, 24), np.uint8)
    lab[0, 3:7, 10:14, 11:15] = 1
    return tio.Subject(
        image=tio.ScalarImage(tensor=torch.from_numpy(img)),
        label=tio.LabelMap(tensor=torch.from_numpy(lab)),
    )


def test_order_and_probabilities():
    aug = build_augmentation({k: 1.0 for k in ORDER})
    names = [type(t).__name__ for t in aug.transforms]
    assert names == [
        "RandomFlip",
        "RandomMotion",
        "RandomBiasField",
        "RandomNoise",
        "RandomAffine",
        "RandomElasticDeformation",
        "RandomBlur",  # beyond the paper, after its six
    ]
    assert [t.probability for t in build_augmentation({"flip": 0.3, "noise": 0.7}).transforms] == [
        0.3,
        0.7,
    ]
    assert build_augmentation({k: 0 for k in ORDER}) is None


def test_intensity_transforms_leave_label_untouched():
    s = _subject()
    out = build_augmentation({"motion": 1, "bias_field": 1, "noise": 1})(s)
    assert torch.equal(out["label"].data, s["label"].data)
    assert not torch.equal(out["image"].data, s["image"].data)


def test_spatial_transforms_move_label_with_image_and_keep_it_binary():
    s = _subject()
    torch.manual_seed(0)
    out = build_augmentation({"flip": 1})(s)
    assert torch.equal(out["label"].data, torch.flip(s["label"].data, dims=[1]))
    assert torch.equal(out["image"].data, torch.flip(s["image"].data, dims=[1]))
    out = build_augmentation({"affine": 1, "elastic": 1})(s)
    assert set(torch.unique(out["label"].data).tolist()) <= {0, 1}


def test_seeded_augmentation_reproducible():
    aug = build_augmentation({k: 1.0 for k in ORDER})
    torch.manual_seed(3)
    a = aug(_subject())["image"].data
    torch.manual_seed(3)
    b = aug(_subject())["image"].data
    assert torch.equal(a, b)


def test_queue_patches_contain_lesion():
    ds = tio.SubjectsDataset([_subject(0), _subject(1)])
    q = patch_queue(ds, 8, samples_per_volume=5)
    patches = [q[i] for i in range(len(q))]
    assert len(patches) == 10
    assert all(p["label"].data.sum() > 0 for p in patches)
    assert patches[0]["image"].data.shape == (1, 8, 8, 8)


def test_bad_config():
    with pytest.raises(VoxflowError, match="elastik"):
        build_augmentation({"elastik": 0.5})
    with pytest.raises(VoxflowError, match="probability 2"):
        build_augmentation({"flip": 2})


def test_multi_class_queue_samples_every_class():
    data = torch.zeros(1, 24, 24, 24)
    label = torch.zeros(1, 24, 24, 24, dtype=torch.uint8)
    label[0, 2:4, 2:4, 2:4] = 1  # tiny
    label[0, 10:22, 10:22, 10:22] = 2  # large
    subject = tio.Subject(image=tio.ScalarImage(tensor=data), label=tio.LabelMap(tensor=label))
    torch.manual_seed(0)
    q = patch_queue(tio.SubjectsDataset([subject]), 4, 40, lesion_probability=1.0, classes=3)
    centres = [int(q[i]["label"].data[0, 2, 2, 2]) for i in range(len(q))]
    # each foreground class is the patch centre about half the time, however small
    assert 10 <= centres.count(1) <= 30 and 10 <= centres.count(2) <= 30


def test_whole_volume_loader_repeats_with_fresh_augmentation():
    from voxflow.augment import whole_volume_loader

    ds = tio.SubjectsDataset([_subject(0), _subject(1)], transform=tio.RandomNoise(std=1.0))
    torch.manual_seed(0)
    batches = list(whole_volume_loader(ds, repeats=3, batch_size=2))
    images = torch.cat([b["image"]["data"] for b in batches])
    assert len(batches) == 3 and images.shape[0] == 6
    # every draw is its own augmentation: no two of the six are equal
    assert len({float(x.sum()) for x in images}) == 6
    plain = list(whole_volume_loader(tio.SubjectsDataset([_subject(0)]), 2, 1, shuffle=False))
    assert torch.equal(plain[0]["image"]["data"], plain[1]["image"]["data"])
    with pytest.raises(VoxflowError):
        whole_volume_loader(ds, 0, 1)


def test_slice_augmentation_reflects_and_is_seeded():
    import torch

    from voxflow.augment import augment_slices

    x = torch.arange(2 * 16 * 16, dtype=torch.float32).reshape(2, 1, 16, 16)
    same = augment_slices(x, rotation_deg=0, translation=0, shear_deg=0, flip=0)
    torch.testing.assert_close(same, x)
    mirrored = augment_slices(x, rotation_deg=0, translation=0, shear_deg=0, flip=1)
    torch.testing.assert_close(mirrored, x.flip(-1))
    torch.manual_seed(3)
    a = augment_slices(x)
    torch.manual_seed(3)
    torch.testing.assert_close(augment_slices(x), a)
    assert not torch.equal(a, x)
    with pytest.raises(VoxflowError, match="B, C, H, W"):
        augment_slices(x[0])


def test_random_flips_flip_whole_axes_and_are_seeded():
    import torch

    from voxflow.augment import random_flips

    x = torch.arange(24.0).reshape(1, 2, 3, 4)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        y = random_flips(x, 0.5)
        flipped = tuple(d for d in (1, 2, 3) if torch.equal(y, torch.flip(x, [d])))
        assert sorted(y.flatten().tolist()) == sorted(x.flatten().tolist())
        seen.add(flipped)
    assert len(seen) > 1
    assert torch.equal(random_flips(x, 0.0), x)
    assert torch.equal(random_flips(x, 1.0), torch.flip(x, [1, 2, 3]))
    torch.manual_seed(3)
    a = random_flips(x, 0.5)
    torch.manual_seed(3)
    assert torch.equal(random_flips(x, 0.5), a)


def test_channel_dropout_zeroes_a_proper_subset_only_in_training():
    import torch

    from voxflow.augment import channel_dropout

    torch.manual_seed(0)
    x = torch.ones(64, 4, 3, 3, 3)
    out = channel_dropout(x, 1.0)
    kept = out.amax(dim=(2, 3, 4))  # (64, 4): 1 = kept, 0 = dropped
    assert ((kept == 0) | (kept == 1)).all()
    assert (kept.sum(1) >= 1).all() and (kept.sum(1) <= 3).all()  # never all, never none
    assert len({tuple(r.tolist()) for r in kept}) > 5  # varied subsets
    assert torch.equal(channel_dropout(x, 0.0), x)
    with torch.no_grad():
        assert torch.equal(channel_dropout(x, 1.0), x)  # validation/inference see everything
    assert torch.equal(channel_dropout(x[:, :1], 1.0), x[:, :1])  # one channel: nothing to drop
    with pytest.raises(VoxflowError, match="channel_dropout"):
        channel_dropout(x, 1.5)


def test_foreground_sampling_map_puts_lesions_anywhere_in_the_patch():
    """Sampling on the dilated label: every patch still holds the lesion, but not always at
    its centre (a plain LabelSampler on the label always centres it there)."""
    from voxflow.augment import SAMPLING_MAP, foreground_sampling_map

    label = torch.zeros(1, 32, 32, 32, dtype=torch.uint8)
    label[0, 16, 16, 16] = 1
    subject = tio.Subject(
        img=tio.ScalarImage(tensor=torch.rand(1, 32, 32, 32)), label=tio.LabelMap(tensor=label)
    )
    out = foreground_sampling_map(3)(subject)
    grown = out[SAMPLING_MAP].data[0]
    assert int(grown.sum()) == 7**3 and bool(grown[13:20, 13:20, 13:20].all())
    torch.manual_seed(0)
    ds = tio.SubjectsDataset([subject], transform=foreground_sampling_map(3))
    queue = patch_queue(ds, 8, 20, label_name=SAMPLING_MAP, lesion_probability=1.0)
    patches = [queue[i] for i in range(len(queue))]
    where = {tuple(torch.nonzero(p["label"]["data"][0])[0].tolist()) for p in patches}
    assert len(where) > 3  # the lesion voxel at several positions ...
    assert all(len(w) == 3 for w in where)  # ... and inside every patch
    with pytest.raises(VoxflowError, match="radius"):
        foreground_sampling_map(-1)


@pytest.mark.parametrize("radius", [0, 1, 3, 8])
def test_box_dilate_is_a_cube_dilation(radius):
    from scipy import ndimage

    from voxflow.augment import box_dilate

    rng = np.random.default_rng(radius)
    mask = rng.random((23, 17, 30)) > 0.995
    mask[0, 0, 0] = mask[-1, -1, -1] = True  # edges
    cube = np.ones((2 * radius + 1,) * 3, bool)
    want = ndimage.binary_dilation(mask, structure=cube)
    got = box_dilate(mask, radius)
    assert got.dtype == np.uint8 and np.array_equal(got.astype(bool), want)


def test_box_dilate_leaves_other_axes_alone():
    from voxflow.augment import box_dilate

    mask = np.zeros((2, 9, 9, 9), bool)
    mask[1, 4, 4, 4] = True
    got = box_dilate(mask, 2, axes=(-3, -2, -1))
    assert got[0].sum() == 0 and got[1].sum() == 125


def test_preload_reads_images_once_within_the_limit(tmp_path):
    import nibabel as nib

    from voxflow.augment import preload

    subjects = []
    for i in range(3):
        path = tmp_path / f"s{i}.nii.gz"
        nib.save(nib.Nifti1Image(np.full((8, 8, 8), i, np.float32), np.eye(4)), path)
        subjects.append(tio.Subject(image=tio.ScalarImage(path)))
    preload(subjects[:2])
    assert all(s.image._loaded for s in subjects[:2]) and not subjects[2].image._loaded
    tiny = [tio.Subject(image=tio.ScalarImage(tmp_path / f"s{i}.nii.gz")) for i in range(3)]
    preload(tiny, limit_mb=1e-6)  # the first one passes the limit: the rest stay on disk
    assert [s.image._loaded for s in tiny] == [True, False, False]
    ds = tio.SubjectsDataset(subjects)
    assert [float(ds[i].image.data.mean()) for i in range(3)] == [0.0, 1.0, 2.0]
