import json

import numpy as np
import pytest
import SimpleITK as sitk

from voxflow.errors import VoxflowError
from voxflow.io.dicom import dicom_to_nifti
from voxflow.io.images import LPS_TO_RAS, read_image
from voxflow.phantoms.gwr import (
    ELLIPSOIDS,
    STRUCTURES,
    GWRPhantomConfig,
    gwr_bg,
    itk_rigid,
    make_patient,
    outcomes,
    write_patient,
)

CFG = GWRPhantomConfig(mr_voxel_mm=2.0, ct_pixel_mm=2.0, ct_slice_mm=4.0)


@pytest.fixture(scope="module")
def patient():
    return make_patient("p001", 7, CFG)


def world_centroid(mask, affine):
    return affine[:3, :3] @ np.argwhere(mask).mean(0) + affine[:3, 3]


def test_landmarks_sit_at_their_atlas_positions_and_tissue(patient):
    labels, affine = patient["labels"], patient["mr_affine"]
    world = np.tensordot(affine[:3, :3], np.indices(labels.shape), axes=1)
    world += affine[:3, 3][:, None, None, None]
    for value, name in STRUCTURES.items():
        assert (labels == value).sum() * 8 > 800, name  # > 0.8 ml each
        for centre, _ in ELLIPSOIDS[name]:
            # left/right halves; the midline corpus callosum: genu (front), splenium (back)
            axis = 1 if centre[0] == 0 else 0
            part = (labels == value) & (np.sign(world[axis]) == np.sign(centre[axis]))
            # the subject's warp moves structures by a few mm only
            assert np.linalg.norm(world_centroid(part, affine) - centre) < 10, name


def test_ct_values_follow_the_hu_table(patient):
    ct = patient["ct"]
    assert ct.dtype == np.int16
    assert (ct > 1000).mean() > 0.005  # a skull
    assert np.median(ct[ct < -900]) == pytest.approx(-1000, abs=20)  # air
    brain = (ct > 15) & (ct < 60)
    assert 25 < np.median(ct[brain]) < 42
    p = patient["params"]
    assert p["hu"]["gm"] < CFG.gm_hu + 1e-6 and p["hu"]["wm"] >= CFG.wm_hu
    assert 1.05 < p["gwr_bg"] < 1.45


def test_ct_is_the_mr_anatomy_seen_through_the_known_transform(patient):
    """CT voxels sampled through the stored transform land on the MR anatomy: bright skull in
    the CT maps to the MR's dark skull, brain maps to brain."""
    rotation, centre, translation = patient["transform"]
    tf = itk_rigid(rotation, centre, translation)
    ct, ct_aff, mr_aff = patient["ct"], patient["ct_affine"], patient["mr_affine"]
    labels = patient["labels"]
    skull = np.argwhere(ct > 1200)[::50]
    brain_in_mr = 0
    for ijk in np.argwhere((ct > 20) & (ct < 50))[::200]:
        p_ras = ct_aff[:3, :3] @ ijk + ct_aff[:3, 3]
        q_lps = np.array(tf.TransformPoint((LPS_TO_RAS[:3, :3] @ p_ras).tolist()))
        q_ras = LPS_TO_RAS[:3, :3] @ q_lps
        # the RAS formula and the ITK transform agree
        np.testing.assert_allclose(
            q_ras, rotation @ (p_ras - centre) + centre + translation, atol=1e-6
        )
        v = np.round(np.linalg.inv(mr_aff) @ [*q_ras, 1])[:3].astype(int)
        brain_in_mr += patient["mr"][tuple(v)] > 400
    assert brain_in_mr / len(np.argwhere((ct > 20) & (ct < 50))[::200]) > 0.9
    assert len(skull) > 10 and labels.max() == 4


def test_gwr_bg_formula():
    hu = np.array([30.0, 40.0, 50.0, 20.0, 0.0])
    labels = np.array([1, 2, 3, 4, 0])
    assert gwr_bg(hu, labels) == pytest.approx((40 + 50) / (30 + 20))
    with pytest.raises(VoxflowError, match="putamen"):
        gwr_bg(hu, np.array([1, 2, 0, 4, 0]))


def test_oedema_lowers_the_ratio():
    cfg_no, cfg_max = (
        GWRPhantomConfig(**{**CFG.__dict__, "oedema_max_percent": w}) for w in (0.0, 4.5)
    )
    a = make_patient("p002", 7, cfg_no)["params"]
    b = make_patient("p002", 7, cfg_max)["params"]
    assert a["water_percent"] == 0 and b["water_percent"] > 0
    assert b["gwr_bg"] < a["gwr_bg"]


def test_written_layout_and_truth(tmp_path, patient):
    write_patient(patient, tmp_path / "root", tmp_path / "truth", seed=7)
    folder = tmp_path / "root" / "p001"
    conv = dicom_to_nifti(folder / "ct", tmp_path / "ct.nii.gz")
    assert conv.data.shape == patient["ct"].shape
    np.testing.assert_allclose(conv.affine, patient["ct_affine"], atol=1e-3)
    assert np.array_equal(conv.data, patient["ct"])
    labels = read_image(folder / "mr_labels.nii.gz", dtype=None)
    assert set(np.unique(labels.data)) == {0, 1, 2, 3, 4}
    tf = sitk.ReadTransform(str(tmp_path / "truth" / "p001" / "ct_to_mr.tfm"))
    p = (10.0, -20.0, 30.0)
    assert tf.TransformPoint(p) == pytest.approx(itk_rigid(*patient["transform"]).TransformPoint(p))
    params = json.loads((tmp_path / "truth" / "p001" / "params.json").read_text())
    assert params["gwr_bg"] == patient["params"]["gwr_bg"]


def test_outcomes_follow_the_ratio():
    params = [
        {"patient": f"p{i:03d}", "gwr_bg": g} for i, g in enumerate(np.linspace(1.05, 1.4, 40))
    ]
    rows = outcomes(params, 1, CFG)
    poor = np.array([o for _, o in rows])
    assert poor[:10].mean() > 0.9 and poor[-10:].mean() < 0.1
    assert rows == outcomes(params, 1, CFG)


def test_config_rejects_unknown_keys():
    with pytest.raises(VoxflowError, match="slice_mm"):
        GWRPhantomConfig.from_dict({"patients": 3, "slice_mm": 5})
