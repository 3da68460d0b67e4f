import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.images import read_image
from voxflow.phantoms.brain import (
    BrainPhantomConfig,
    config_from_dict,
    load_template,
    make_brain,
    qc_table,
    read_template,
    write_brain,
    write_template,
)


def test_same_seed_byte_identical_files_and_subjects_differ(tmp_path):
    cfg = BrainPhantomConfig(voxel_mm=6.0)
    a = write_brain(make_brain("sub-001", 42, cfg), tmp_path / "a")
    b = write_brain(make_brain("sub-001", 42, cfg), tmp_path / "b")
    c = write_brain(make_brain("sub-002", 42, cfg), tmp_path / "c")
    d = write_brain(make_brain("sub-001", 43, cfg), tmp_path / "d")
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes()
    assert a["gm"].read_bytes() != c["gm"].read_bytes()
    assert a["gm"].read_bytes() != d["gm"].read_bytes()


def test_anatomy_is_physical(small_brain):
    b = small_brain
    inside = b.mask.astype(bool)
    total = b.gm + b.wm + b.csf
    assert np.allclose(total[inside], 1.0, atol=1e-5)
    assert np.all(total[~inside] == 0)
    for t in (b.gm, b.wm, b.csf):
        assert t.min() >= 0 and t.max() <= 1
    vols = b.volumes_ml()
    # MNI152 2009a: sum of GM probabilities ~1008 ml; per-subject scaling is within +-6 % a side
    assert 800 < vols["gm"] < 1250 and 450 < vols["wm"] < 850 and vols["csf"] < vols["wm"]
    assert np.allclose(np.diag(b.affine)[:3], 6.0)
    # WM is brighter than GM in the T1 template
    assert b.t1[b.wm > 0.9].mean() > b.t1[b.gm > 0.9].mean()


def test_deformation_moves_anatomy_but_keeps_grid():
    cfg = BrainPhantomConfig(voxel_mm=4.0)
    a, b = make_brain("sub-001", 1, cfg), make_brain("sub-002", 1, cfg)
    assert a.gm.shape == b.gm.shape and np.array_equal(a.affine, b.affine)
    overlap = (
        np.logical_and(a.wm > 0.5, b.wm > 0.5).sum() / np.logical_or(a.wm > 0.5, b.wm > 0.5).sum()
    )
    assert 0.3 < overlap < 0.97  # different subjects, same anatomy


def test_no_variation_gives_template():
    cfg = BrainPhantomConfig(
        voxel_mm=4.0, rotation_deg=0, scale=0, translation_mm=0, deformation_mm=0
    )
    a, b = make_brain("sub-001", 1, cfg), make_brain("sub-009", 5, cfg)
    assert np.array_equal(a.gm, b.gm)


def test_qc_table_reads_written_subjects(tmp_path, small_brain):
    write_brain(small_brain, tmp_path / "sub-001")
    table = qc_table([tmp_path / "sub-001"])
    assert table.loc[0, "subject"] == "sub-001" and table.loc[0, "voxel_mm"] == 6.0
    assert table.loc[0, "gm_ml"] == pytest.approx(small_brain.volumes_ml()["gm"], rel=1e-4)
    assert read_image(tmp_path / "sub-001" / "mask.nii.gz", dtype=None).data.dtype == np.uint8


def test_bad_config():
    with pytest.raises(VoxflowError, match="voxle_mm"):
        config_from_dict({"voxle_mm": 2})
    with pytest.raises(VoxflowError, match="deformation_spacing_mm"):
        BrainPhantomConfig(voxel_mm=8, deformation_spacing_mm=10)


def test_template_file_gives_identical_subjects(tmp_path):
    """brain_phantom jobs read the pre-filtered template from a file: same arrays as building it."""
    cfg = BrainPhantomConfig(voxel_mm=6.0)
    path = write_template(load_template(6.0), tmp_path / "template.npz")
    template = read_template(path)
    a, b = make_brain("sub-003", 7, cfg), make_brain("sub-003", 7, cfg, template)
    for name in ("t1", "gm", "wm", "csf", "mask"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert np.array_equal(a.affine, b.affine)
    with pytest.raises(VoxflowError, match="template is for 6.0 mm"):
        make_brain("sub-003", 7, BrainPhantomConfig(voxel_mm=4.0), template)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(VoxflowError, match="bad.npz: not a brain template"):
        read_template(tmp_path / "bad.npz")
