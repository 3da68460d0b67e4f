import numpy as np
import pydicom
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.dicom import dicom_to_nifti
from voxflow.io.dicom_write import identity, write_series


def axial_affine(spacing=(0.8, 0.8, 4.0), origin=(100.0, 120.0, -60.0)):
    affine = np.diag([-spacing[0], -spacing[1], spacing[2], 1.0])
    affine[:3, 3] = origin
    return affine


def test_round_trip_through_the_dicom_stage(tmp_path):
    g = np.random.default_rng(0)
    data = g.integers(-1000, 2000, (12, 10, 5)).astype(np.float32)
    affine = axial_affine()
    paths = write_series(tmp_path / "ct", data, affine, "p001", seed=3)
    assert len(paths) == 5
    conv = dicom_to_nifti(tmp_path / "ct", tmp_path / "ct.nii.gz")
    world = conv.affine @ [0, 0, 0, 1]
    np.testing.assert_allclose(world, affine @ [0, 0, 0, 1], atol=1e-3)
    # same voxels at the same world positions (whatever axis order the converter keeps)
    ijk = np.round(np.linalg.inv(conv.affine) @ affine @ [3, 4, 2, 1]).astype(int)[:3]
    assert conv.data[tuple(ijk)] == data[3, 4, 2]
    assert sorted(np.unique(conv.data))[:3] == sorted(np.unique(data))[:3]
    ds = pydicom.dcmread(paths[0])
    assert ds.RescaleIntercept == -1024
    # hospital-style identifiers, none of them the folder ID (the privacy tests look for them)
    ids = identity("p001", seed=3)
    assert {k: str(ds.get(k)) for k in ids} == ids
    assert len(ds.PatientID) == 10 and ds.PatientID.isdigit()
    assert ds.PatientName.family_name.isalpha() and ds.PatientName.given_name.isalpha()
    assert len(ds.PatientBirthDate) == 8 and "1935" <= ds.PatientBirthDate[:4] <= "1990"
    assert "p001" not in {ds.PatientID, str(ds.PatientName)}
    assert identity("p001", seed=4) != ids and identity("p002", seed=3)["PatientID"] != ds.PatientID
    assert float(ds.SliceThickness) == pytest.approx(4.0)


def test_rerun_writes_identical_files(tmp_path):
    data = np.zeros((4, 4, 3), np.float32)
    a = write_series(tmp_path / "a", data, axial_affine(), "p001", seed=1)
    b = write_series(tmp_path / "b", data, axial_affine(), "p001", seed=1)
    c = write_series(tmp_path / "c", data, axial_affine(), "p002", seed=1)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert a[0].read_bytes() != c[0].read_bytes()


def test_refuses_out_of_range_and_2d(tmp_path):
    with pytest.raises(VoxflowError, match="uint16"):
        write_series(tmp_path / "x", np.full((4, 4, 2), -3000.0), axial_affine(), "p")
    with pytest.raises(VoxflowError, match="3D"):
        write_series(tmp_path / "y", np.zeros((4, 4)), axial_affine(), "p")


def test_numbers_name_the_files_and_set_instance_numbers(tmp_path):
    import pydicom

    data = np.zeros((4, 4, 3))
    paths = write_series(
        tmp_path,
        data,
        np.eye(4),
        "P",
        modality="MR",
        intercept=0.0,
        prefix="Image-",
        numbers=[17, 9, 12],
    )
    assert [p.name for p in paths] == ["Image-17.dcm", "Image-9.dcm", "Image-12.dcm"]
    assert pydicom.dcmread(paths[1]).InstanceNumber == 9
    with pytest.raises(VoxflowError, match="2 numbers for 3 slices"):
        write_series(tmp_path, data, np.eye(4), "P", intercept=0.0, numbers=[1, 2])
