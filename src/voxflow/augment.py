"""TorchIO augmentation and patch sampling, built from config, shared by all studies.

The order is fixed (as in the MS paper): flip, motion, bias field, noise, affine, elastic
deformation, then (beyond the paper, off by default) blur, for resolution randomisation; each
transform is applied with its configured probability (0 leaves it out).
TorchIO applies intensity transforms (motion, bias field, noise) to ``ScalarImage``\\ s only and
spatial ones (flip, affine, elastic) to images and ``LabelMap``\\ s together, so masks stay
aligned and binary. Randomness comes from torch's global RNG, which the trainer reseeds from the
config seed every epoch.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from voxflow.errors import VoxflowError

ORDER = ("flip", "motion", "bias_field", "noise", "affine", "elastic", "blur")
DEFAULT_PROBABILITIES = {
    "flip": 0.5,
    "motion": 0.2,
    "bias_field": 0.3,
    "noise": 0.3,
    "affine": 0.3,
    "elastic": 0.2,
    "blur": 0.0,
}


def build_augmentation(probabilities: Mapping[str, float] | None = None):
    """A ``tio.Compose`` of the configured transforms in the fixed order (None if all are 0)."""
    import torchio as tio

    probs = dict(DEFAULT_PROBABILITIES if probabilities is None else probabilities)
    unknown = sorted(set(probs) - set(ORDER))
    if unknown:
        raise VoxflowError(f"augment: unknown transform(s) {unknown}; allowed {list(ORDER)}")
    for name, p in probs.items():
        if not 0 <= float(p) <= 1:
            raise VoxflowError(f"augment.{name}: probability {p} is not within 0-1")
    makers = {
        "flip": lambda p: tio.RandomFlip(axes=(0,), flip_probability=1.0, p=p),  # left-right
        "motion": lambda p: tio.RandomMotion(degrees=5, translation=5, num_transforms=2, p=p),
        "bias_field": lambda p: tio.RandomBiasField(coefficients=0.3, p=p),
        "noise": lambda p: tio.RandomNoise(std=(0, 0.1), p=p),
        "affine": lambda p: tio.RandomAffine(scales=0.1, degrees=10, translation=5, p=p),
        "elastic": lambda p: tio.RandomElasticDeformation(
            num_control_points=7, max_displacement=5, p=p
        ),
        "blur": lambda p: tio.RandomBlur(std=(0, 2), p=p),  # Gaussian, SD up to 2 mm
    }
    transforms = [makers[n](float(probs[n])) for n in ORDER if float(probs.get(n, 0)) > 0]
    return tio.Compose(transforms) if transforms else None


def patch_queue(
    subjects,
    patch_size,
    samples_per_volume: int,
    label_name: str = "label",
    lesion_probability: float = 1.0,
    num_workers: int = 0,
    max_length: int | None = None,
    classes: int = 2,
):
    """A ``tio.Queue`` of patches drawn by a ``LabelSampler``: with ``lesion_probability`` = 1
    every patch is centred on a labelled voxel, so it contains lesion. With ``classes`` > 2
    (multi-class label maps) that probability is shared equally by the foreground classes, so
    small structures are sampled as often as large ones (as nnU-Net oversamples foreground)."""
    import torchio as tio

    if not 0 <= lesion_probability <= 1:
        raise VoxflowError("lesion_probability must be within 0-1")
    sampler = tio.LabelSampler(
        patch_size,
        label_name=label_name,
        label_probabilities={
            0: 1 - lesion_probability,
            **{k: lesion_probability / (classes - 1) for k in range(1, classes)},
        },
    )
    return tio.Queue(
        subjects,
        max_length=max_length or 2 * samples_per_volume,
        samples_per_volume=samples_per_volume,
        sampler=sampler,
        num_workers=num_workers,
        shuffle_subjects=True,
        shuffle_patches=True,
        start_background=False,
    )


SAMPLING_MAP = "sampling"


def box_dilate(mask: np.ndarray, radius: int, axes: tuple[int, ...] | None = None) -> np.ndarray:
    """``mask`` (bool) dilated by a box of half-width ``radius`` voxels along ``axes`` (default:
    all; a cube in 3D), as uint8. Per axis a moving-window sum from a cumulative sum: O(voxels)
    whatever the radius (3x faster than max-pooling at radius 8; the same result)."""
    out = mask.astype(np.int32)
    for axis in range(out.ndim) if axes is None else [a % out.ndim for a in axes]:
        n = out.shape[axis]
        pad = [(0, 0)] * out.ndim
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(out, pad), axis=axis)
        hi = [slice(None)] * out.ndim
        lo = [slice(None)] * out.ndim
        hi[axis] = slice(2 * radius + 1, 2 * radius + 1 + n)
        lo[axis] = slice(0, n)
        out = (c[tuple(hi)] - c[tuple(lo)] > 0).astype(np.int32)
    return out.astype(np.uint8)


def foreground_sampling_map(radius: int, label_name: str = "label"):
    """A transform that adds ``SAMPLING_MAP``: the (binary) label dilated by ``radius`` voxels
    (a cube). A ``LabelSampler`` on it centres patches anywhere within ``radius`` of a lesion,
    so the lesion sits anywhere in the patch, as nnU-Net's foreground oversampling places it.
    Sampling on the label itself puts every lesion at the patch centre: a network then learns
    that position as a cue, and in a sliding window, where lesions sit anywhere, misses
    them. Apply it after the spatial augmentation, so the map follows the moved label."""
    import torch
    import torchio as tio

    if radius < 0:
        raise VoxflowError(f"sampling radius must be >= 0, got {radius}")

    class ForegroundSamplingMap(tio.Transform):
        def apply_transform(self, subject):
            label = subject[label_name]
            grown = box_dilate(label.data.numpy() > 0, radius, axes=(-3, -2, -1))
            subject.add_image(
                tio.LabelMap(tensor=torch.from_numpy(grown), affine=label.affine), SAMPLING_MAP
            )
            return subject

    return ForegroundSamplingMap()


def preload(subjects: list, limit_mb: float = 2048.0) -> list:
    """Read the subjects' images into memory once, while they fit in ``limit_mb``; the rest stay
    on disk. A ``SubjectsDataset`` otherwise reads (and un-gzips) every image of a subject each
    time it draws the subject, every epoch; the values are the same either way."""
    used = 0.0
    for subject in subjects:
        if used >= limit_mb:
            break
        subject.load()
        used += sum(im.data.numel() * im.data.element_size() for im in subject.get_images()) / 2**20
    return subjects


def whole_volume_loader(subjects, repeats: int, batch_size: int, shuffle: bool = True):
    """A loader of whole (augmented) volumes, each subject ``repeats`` times per epoch with a
    fresh random transform every time: for inputs already cropped to the patch size, where a
    patch queue would hand out ``samples_per_volume`` identical copies of one augmentation."""
    import torch

    class Repeated(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(subjects) * repeats

        def __getitem__(self, i: int):
            return subjects[i % len(subjects)]

    if repeats < 1:
        raise VoxflowError(f"repeats must be >= 1, got {repeats}")
    return torch.utils.data.DataLoader(Repeated(), batch_size=batch_size, shuffle=shuffle)


def augment_slices(
    x,
    rotation_deg: float = 10.0,
    translation: float = 0.05,
    shear_deg: float = 5.0,
    flip: float = 0.5,
):
    """Random 2D affine augmentation of a batch of slices ``x`` (B, C, H, W): rotation within
    ±``rotation_deg``, translation within ±``translation`` of the image size, shear within
    ±``shear_deg`` and a left-right reflection with probability ``flip`` (the l3 paper's
    over-sampling transforms), bilinear, zero outside. Uses torch's global RNG."""
    import math

    import torch
    import torch.nn.functional as F

    if x.dim() != 4:
        raise VoxflowError(f"augment_slices: expected (B, C, H, W), got shape {tuple(x.shape)}")
    b = x.shape[0]

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(b, dtype=torch.float64) * 2 - 1) * limit

    angle, shear = uniform(math.radians(rotation_deg)), uniform(math.radians(shear_deg))
    shift = torch.stack([uniform(2 * translation), uniform(2 * translation)], 1)
    mirror = torch.where(torch.rand(b, dtype=torch.float64) < flip, -1.0, 1.0)
    cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
    theta = torch.zeros(b, 2, 3, dtype=torch.float64)
    # rotation @ shear (x' = x + tan * y) @ reflection of the column axis
    theta[:, 0, 0], theta[:, 0, 1] = cos * mirror, cos * tan - sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * mirror, sin * tan + cos
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_flips(x, p: float = 0.5):
    """``x`` (C, *spatial) flipped along each spatial axis with probability ``p`` (torch's
    global RNG): the symmetry augmentation of a whole-volume classifier."""
    import torch

    if not 0 <= p <= 1:
        raise VoxflowError(f"augment.flip: probability {p} is not within 0-1")
    dims = [d for d in range(1, x.dim()) if float(torch.rand(())) < p]
    return torch.flip(x, dims) if dims else x


def channel_dropout(x, p: float):
    """Batch ``x`` (N, C, *spatial) where each sample, with probability ``p``, has a random
    non-empty proper subset of its channels set to zero (torch's global RNG), so that a
    multi-channel model also works on cohorts that lack a channel (zeros = the WM level of a
    peak-normalised image, the mean of a Z-scored one). Only while gradients are on:
    validation and inference see every channel."""
    import torch

    if not 0 <= p <= 1:
        raise VoxflowError(f"channel_dropout: probability {p} is not within 0-1")
    n, c = x.shape[:2]
    if p == 0 or c < 2 or not torch.is_grad_enabled():
        return x
    keep = torch.ones(n, c, dtype=x.dtype)
    for i in range(n):
        if float(torch.rand(())) < p:
            k = int(torch.randint(1, c, ()))  # how many channels to drop: 1 .. c-1
            keep[i, torch.randperm(c)[:k]] = 0
    return x * keep.view(n, c, *([1] * (x.dim() - 2))).to(x.device)
