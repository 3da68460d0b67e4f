"""Rigid MR -> CT registration on a small real-anatomy pair (MNI152 brain phantom at 3 mm)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from voxflow.errors import VoxflowError
from voxflow.register import (
    RegistrationConfig,
    register_mr_to_ct,
    register_rigid,
    target_registration_error,
)

# small grids: a 3 mm MR and a 2 x 2 x 4 mm CT; coarse levels 6 mm, finest 3 mm
CFG = RegistrationConfig(
    level_spacing_mm=(6.0, 3.0),
    smoothing_sigmas_mm=(3.0, 0.0),
    iterations=(100, 60),
    sampling_percentage=(0.5, 0.5),
    search_angles_deg=(-15.0, 0.0, 15.0),
    search_top_k=2,
)
TRUTH_DEG = (9.0, -7.0, 6.0)
TRUTH_MM = (7.0, -5.0, 4.0)
LABELS = (0, 1, 2, 7)


def _ras_to_sitk(arr: np.ndarray, affine: np.ndarray, dtype=np.float32) -> sitk.Image:
    img = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(arr, (2, 1, 0)).astype(dtype)))
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    flip = np.diag([-1.0, -1.0, 1.0])
    img.SetSpacing(tuple(float(s) for s in spacing))
    img.SetDirection(tuple((flip @ (affine[:3, :3] / spacing)).ravel().tolist()))
    img.SetOrigin(tuple((flip @ affine[:3, 3]).tolist()))
    return img


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """MR (brain-only T1), labels, a CT in HU (skull, scalp, noise) made through a known rigid
    transform, and the CT's brain mask; all also written as NIfTI."""
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain

    a = make_brain("sub-001", 42, BrainPhantomConfig(voxel_mm=3.0))
    mr = _ras_to_sitk(a.t1, a.affine)
    labels = np.where(a.mask > 0, 1, 0) + np.where(a.wm > 0.5, 1, 0) + np.where(a.gm > 0.6, 6, 0)
    labels_img = _ras_to_sitk(labels, a.affine, np.uint8)
    labels_img.CopyInformation(mr)

    # head in HU on the MR grid padded by 8 voxels (24 mm): brain, CSF, skull, scalp, air
    p = 8
    brain = np.pad(a.mask > 0, p)
    dist = ndimage.distance_transform_edt(~brain, sampling=3.0)
    hu = np.full(brain.shape, -1000.0)
    hu[dist <= 15] = 35.0
    hu[(dist > 3) & (dist <= 9)] = 1500.0
    hu[(dist > 0) & (dist <= 3)] = 8.0
    tissue = np.pad(40 * a.gm + 30 * a.wm + 8 * a.csf, p)
    hu[brain] = tissue[brain]
    aff = a.affine.copy()
    aff[:3, 3] -= 3.0 * p
    hu_img = _ras_to_sitk(hu, aff)
    mask_img = _ras_to_sitk(brain, aff, np.uint8)

    stats = sitk.LabelShapeStatisticsImageFilter()
    stats.Execute(mask_img)
    centre = stats.GetCentroid(1)
    truth = sitk.Euler3DTransform(centre, *np.deg2rad(TRUTH_DEG), TRUTH_MM)
    ct_grid = sitk.Image(95, 110, 45, sitk.sitkFloat32)
    ct_grid.SetSpacing((2.0, 2.0, 4.0))
    ct_grid.SetOrigin(tuple(np.asarray(centre) - np.array([95, 110, 45]) * [1.0, 1.0, 2.0] + 0.3))
    ct = sitk.Resample(hu_img, ct_grid, truth, sitk.sitkLinear, -1000.0)
    ct = sitk.AdditiveGaussianNoise(ct, 5.0, 0.0, 7)
    ct_brain = sitk.Resample(mask_img, ct, truth, sitk.sitkNearestNeighbor, 0)

    d = tmp_path_factory.mktemp("pair")
    paths = {"ct": d / "ct.nii.gz", "mr": d / "mr.nii.gz", "labels": d / "labels.nii.gz"}
    sitk.WriteImage(ct, str(paths["ct"]))
    sitk.WriteImage(mr, str(paths["mr"]))
    sitk.WriteImage(labels_img, str(paths["labels"]))
    return {
        "ct": ct,
        "mr": mr,
        "labels": labels_img,
        "truth": truth,
        "brain": sitk.GetArrayFromImage(ct_brain) > 0,
        "paths": paths,
    }


@pytest.fixture(scope="module")
def registered(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    paths = {"tfm": out / "ct_to_mr.tfm", "labels": out / "labels_ct.nii.gz", "qc": out / "qc.png"}
    p = pair["paths"]
    result = register_mr_to_ct(
        p["ct"], p["mr"], p["labels"], paths["tfm"], paths["labels"], paths["qc"], CFG
    )
    return result, paths


def test_recovers_known_rigid_transform(pair, registered):
    result, _ = registered
    tre = target_registration_error(result.transform, pair["truth"], pair["ct"], pair["brain"])
    start = target_registration_error(sitk.Euler3DTransform(), pair["truth"], pair["ct"])
    assert start > 10.0  # the pair really starts misaligned
    assert tre < 1.0, f"TRE {tre:.2f} mm (rotation {result.rotation_deg}, truth {TRUTH_DEG})"
    np.testing.assert_allclose(result.rotation_deg, TRUTH_DEG, atol=1.0)
    assert isinstance(result.transform, sitk.Euler3DTransform)
    assert result.metric < 0 and result.seconds > 0 and len(result.iterations) == 2


def test_written_transform_is_the_result(pair, registered):
    result, paths = registered
    back = sitk.ReadTransform(str(paths["tfm"]))
    assert target_registration_error(back, result.transform, pair["ct"]) < 1e-6


def test_labels_nearest_neighbour_on_ct_grid(pair, registered):
    result, paths = registered
    out = nib.load(paths["labels"])
    ct = nib.load(pair["paths"]["ct"])
    assert out.shape == ct.shape
    np.testing.assert_allclose(out.affine, ct.affine, atol=1e-4)
    assert out.get_data_dtype() == np.uint8
    data = np.asarray(out.dataobj)
    assert set(np.unique(data)) <= set(LABELS)
    assert {1, 2, 7} <= set(np.unique(data))
    # the labels land where the truth puts them (Dice of the brain > 0.9)
    ref = sitk.Resample(pair["labels"], pair["ct"], pair["truth"], sitk.sitkNearestNeighbor, 0)
    ref = np.transpose(sitk.GetArrayFromImage(ref), (2, 1, 0)) > 0
    got = data > 0
    dice = 2 * np.count_nonzero(ref & got) / (np.count_nonzero(ref) + np.count_nonzero(got))
    assert dice > 0.9


def test_qc_png_written(registered):
    _, paths = registered
    assert paths["qc"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in paths["qc"].parent.iterdir()) == sorted(
        p.name for p in paths.values()
    )  # no temporary files left


def test_reruns_are_identical(pair):
    cfg = replace(CFG, iterations=(30, 10), search_top_k=1)
    a = register_rigid(pair["ct"], pair["mr"], cfg)
    b = register_rigid(pair["ct"], pair["mr"], cfg)
    assert a.transform.GetParameters() == b.transform.GetParameters()


def test_tre_zero_for_identical_transforms(pair):
    t = sitk.Euler3DTransform((1.0, 2.0, 3.0), 0.1, -0.2, 0.3, (4.0, 5.0, 6.0))
    assert target_registration_error(t, sitk.Euler3DTransform(t), pair["ct"]) == 0.0


def test_tre_equals_pure_translation(pair):
    shift = sitk.TranslationTransform(3, (3.0, 4.0, 0.0))
    tre = target_registration_error(shift, sitk.Euler3DTransform(), pair["ct"], pair["brain"])
    assert tre == pytest.approx(5.0, abs=1e-9)
    # a rotation by 180 deg about z through the origin moves (x, y, z) by 2 * |(x, y)|
    rot = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.0, 0.0, np.pi)
    mask = np.zeros(pair["brain"].shape, dtype=bool)
    mask[0, 0, 0] = True
    x, y, _ = pair["ct"].GetOrigin()
    tre = target_registration_error(rot, sitk.Euler3DTransform(), pair["ct"], mask)
    assert tre == pytest.approx(2 * np.hypot(x, y), rel=1e-9)


def test_tre_generic_transform_matches_affine_path(pair):
    est = sitk.Euler3DTransform((0.0, 0.0, 0.0), 0.05, 0.0, -0.03, (1.0, -2.0, 0.5))
    composite = sitk.CompositeTransform([sitk.Euler3DTransform(est)])
    mask = np.zeros(pair["brain"].shape, dtype=bool)
    mask[10:12, 40:60, 40:60] = True
    a = target_registration_error(est, sitk.Transform(), pair["ct"], mask)
    b = target_registration_error(composite, sitk.Transform(), pair["ct"], mask)
    assert a == pytest.approx(b, rel=1e-9) and a > 1.0


def _write(img: sitk.Image, path: Path) -> Path:
    sitk.WriteImage(img, str(path))
    return path


def _assert_fails(pair, tmp_path, match: str, ct=None, mr=None, cfg=CFG) -> str:
    p = pair["paths"]
    out = tmp_path / "out"
    with pytest.raises(VoxflowError, match=match) as err:
        register_mr_to_ct(
            ct or p["ct"],
            mr or p["mr"],
            p["labels"],
            out / "t.tfm",
            out / "l.nii.gz",
            out / "qc.png",
            cfg,
        )
    assert not out.exists() or not any(out.iterdir())  # nothing left behind
    assert "\n" not in str(err.value)
    return str(err.value)


def test_error_empty_image(pair, tmp_path):
    empty = _write(pair["mr"] * 0, tmp_path / "empty.nii.gz")
    msg = _assert_fails(pair, tmp_path, "empty", mr=empty)
    assert str(empty) in msg


def test_error_2d_image(pair, tmp_path):
    flat = _write(sitk.GetImageFromArray(np.ones((20, 20), np.float32)), tmp_path / "flat.nii")
    msg = _assert_fails(pair, tmp_path, "not a 3D volume", ct=flat)
    assert str(flat) in msg


def test_error_nan(pair, tmp_path):
    arr = sitk.GetArrayFromImage(pair["mr"])
    arr[5, 5, 5] = np.nan
    img = sitk.GetImageFromArray(arr)
    img.CopyInformation(pair["mr"])
    msg = _assert_fails(pair, tmp_path, "NaN", mr=_write(img, tmp_path / "nan.nii.gz"))
    assert "nan.nii.gz" in msg


def test_error_no_overlap(pair, tmp_path):
    far = sitk.Image(pair["mr"])
    far.SetOrigin(tuple(o + 2000.0 for o in far.GetOrigin()))
    path = _write(far, tmp_path / "far.nii.gz")
    cfg = replace(CFG, initialization="none")
    msg = _assert_fails(pair, tmp_path, "failed", mr=path, cfg=cfg)
    assert str(path) in msg and str(pair["paths"]["ct"]) in msg


def test_error_too_little_overlap(pair, tmp_path):
    block = pair["mr"][20:30, 25:35, 20:30]  # a 30 mm cube from the middle of the brain
    msg = _assert_fails(pair, tmp_path, "overlaps", mr=_write(block, tmp_path / "block.nii.gz"))
    assert "block.nii.gz" in msg


def test_error_missing_file(pair, tmp_path):
    _assert_fails(pair, tmp_path, "not found", mr=tmp_path / "nope.nii.gz")


def test_config_from_dict():
    cfg = RegistrationConfig.from_dict(
        {
            "iterations": [5, 5],
            "level_spacing_mm": [4, 2],
            "smoothing_sigmas_mm": [1, 0],
            "sampling_percentage": [0.1, 0.1],
        }
    )
    assert cfg.iterations == (5, 5) and cfg.threads == RegistrationConfig().threads
    with pytest.raises(VoxflowError, match="bogus"):
        RegistrationConfig.from_dict({"bogus": 1, "iterations": [1, 1, 1]})
    with pytest.raises(VoxflowError, match="iterations"):
        RegistrationConfig.from_dict({"iterations": [10]})
    with pytest.raises(VoxflowError, match="sampling_strategy"):
        RegistrationConfig.from_dict({"sampling_strategy": "everything"})
