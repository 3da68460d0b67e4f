import numpy as np
import pytest
import SimpleITK as sitk
from shared_data import OPEN_MS, needs

from voxflow.errors import VoxflowError
from voxflow.io.images import read_image
from voxflow.io.layouts.ms import read_cohort
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.phantoms.ms import make_ms_subject, write_isbi2015


def test_isbi2015_reads_phantom_cohort(tmp_path):
    brain = make_brain("sub-001", 1, BrainPhantomConfig(voxel_mm=6.0))
    subj = make_ms_subject(brain, 1)
    for i in (2, 1):
        write_isbi2015(subj, tmp_path, i)
    cases = read_cohort("isbi2015", tmp_path)
    assert [c.case for c in cases] == ["training01_01", "training02_01"]
    assert set(cases[0].channels) == {"flair", "mprage", "pd", "t2"}
    assert np.array_equal(read_image(cases[0].mask, dtype=None).data, subj.mask1)
    assert cases[0].mask2 is not None
    (cases[1].channels["pd"]).unlink()
    with pytest.raises(VoxflowError, match="training02_01_pd_pp.nii: missing pd image"):
        read_cohort("isbi2015", tmp_path)


@needs(OPEN_MS)
def test_open_ms_data_real_patient():
    (case,) = read_cohort("open_ms_data", OPEN_MS)
    assert case.case == "patient26" and set(case.channels) == {"flair", "mprage", "t2"}
    flair, mask = read_image(case.channels["flair"]), read_image(case.mask, dtype=None)
    assert flair.shape == mask.shape == (182, 218, 182)
    assert 0 < mask.data.sum() < 0.01 * mask.data.size  # lesions: a small part of the head
    # FLAIR lesions are hyperintense relative to the brain
    brain = flair.data > np.percentile(flair.data[flair.data > 0], 5)
    assert flair.data[mask.data > 0].mean() > flair.data[brain].mean()


def test_miccai2008_nhdr_layout(tmp_path):
    case = tmp_path / "CHB_train_Case01"
    case.mkdir()
    img = sitk.GetImageFromArray(np.ones((4, 5, 6), np.float32))
    img.SetSpacing((0.5, 0.5, 0.5))
    for name in ("FLAIR", "T1", "T2", "lesion"):
        sitk.WriteImage(img, str(case / f"CHB_train_Case01_{name}.nhdr"))
    assert (case / "CHB_train_Case01_FLAIR.raw.gz").exists() or any(case.glob("*.raw*"))
    (c,) = read_cohort("miccai2008", tmp_path)
    assert set(c.channels) == {"flair", "mprage", "t2"}  # no PD in MICCAI 2008
    assert read_image(c.channels["mprage"]).spacing == (0.5, 0.5, 0.5)


def test_bad_layout_and_root(tmp_path):
    with pytest.raises(VoxflowError, match="unknown MS layout 'isbi'"):
        read_cohort("isbi", tmp_path)
    with pytest.raises(VoxflowError, match="no isbi2015 cases found"):
        read_cohort("isbi2015", tmp_path)
    with pytest.raises(VoxflowError, match="dataset root not found"):
        read_cohort("open_ms_data", tmp_path / "nope")
