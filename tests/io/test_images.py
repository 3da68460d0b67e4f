import gzip

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from voxflow.errors import VoxflowError
from voxflow.io.images import Volume, check_finite, check_same_grid, read_image, write_nifti


def _affine():
    a = np.array([[0, 0, 2.5, -10], [-1.2, 0, 0, 30], [0, 1.2, 0, -5], [0, 0, 0, 1]], float)
    return a


def test_nifti_roundtrip_keeps_data_and_affine(tmp_path):
    data = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    path = write_nifti(tmp_path / "a.nii.gz", data, _affine())
    vol = read_image(path)
    assert np.array_equal(vol.data, data)
    assert np.allclose(vol.affine, _affine())
    assert vol.spacing == pytest.approx((1.2, 1.2, 2.5))
    img = nib.load(path)
    assert img.header["sform_code"] == 1 and img.header["qform_code"] == 1
    assert img.header.get_xyzt_units() == ("mm", "sec")


def test_nifti_bytes_are_reproducible(tmp_path):
    data = np.arange(60, dtype=np.int16).reshape(3, 4, 5)
    a = write_nifti(tmp_path / "a.nii.gz", data, np.eye(4)).read_bytes()
    b = write_nifti(tmp_path / "b.nii.gz", data, np.eye(4)).read_bytes()
    assert a == b  # no timestamp or file name in the gzip header
    assert gzip.decompress(a)[:4] == (348).to_bytes(4, "little")


def test_label_dtype_kept_and_bool_stored_uint8(tmp_path):
    path = write_nifti(tmp_path / "m.nii.gz", np.ones((2, 2, 2), bool), np.eye(4))
    assert read_image(path, dtype=None).data.dtype == np.uint8


def test_nrrd_lps_converted_to_ras_like_nifti(tmp_path):
    """The same SimpleITK image saved as NRRD and as NIfTI must read identically."""
    arr = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)  # (k, j, i)
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.5, 0.7, 2.0))
    img.SetOrigin((10.0, -20.0, 30.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, -s, 0, s, c, 0, 0, 0, 1))
    sitk.WriteImage(img, str(tmp_path / "x.nhdr"))
    sitk.WriteImage(img, str(tmp_path / "x.nii.gz"))
    a, b = read_image(tmp_path / "x.nhdr"), read_image(tmp_path / "x.nii.gz")
    assert a.shape == (6, 5, 4)
    assert np.array_equal(a.data, b.data)
    assert np.allclose(a.affine, b.affine, atol=1e-4)
    # voxel (0,0,0) sits at the LPS origin, i.e. RAS (-10, 20, 30)
    assert np.allclose(a.affine[:3, 3], [-10, 20, 30])


@pytest.mark.parametrize("name", ["missing.nii.gz", "bad.nii.gz", "img.png"])
def test_bad_files_raise_named_errors(tmp_path, name):
    if name == "bad.nii.gz":
        good = write_nifti(tmp_path / "g.nii.gz", np.zeros((8, 8, 8), np.float32), np.eye(4))
        (tmp_path / name).write_bytes(good.read_bytes()[:60])  # truncated
    elif name == "img.png":
        (tmp_path / name).write_bytes(b"\x89PNG")
    with pytest.raises(VoxflowError, match=str(tmp_path / name)):
        read_image(tmp_path / name)


def test_checks(tmp_path):
    data = np.zeros((3, 3, 3), np.float32)
    data[1, 1, 1] = np.nan
    with pytest.raises(VoxflowError, match="1 NaN/inf voxel"):
        check_finite(Volume(data, np.eye(4), tmp_path / "flair.nii.gz"))
    a = Volume(np.zeros((3, 3, 3)), np.eye(4), tmp_path / "a.nii.gz")
    with pytest.raises(VoxflowError, match="shape"):
        check_same_grid(a, Volume(np.zeros((3, 3, 4)), np.eye(4), tmp_path / "b.nii.gz"))
    shifted = np.eye(4)
    shifted[0, 3] = 1.0
    with pytest.raises(VoxflowError, match="affine differs"):
        check_same_grid(a, Volume(np.zeros((3, 3, 3)), shifted, tmp_path / "b.nii.gz"))
    check_same_grid(a, a)


def test_write_refuses_wrong_suffix(tmp_path):
    with pytest.raises(VoxflowError, match=r"\.nii or \.nii\.gz"):
        write_nifti(tmp_path / "x.nrrd", np.zeros((2, 2, 2)), np.eye(4))


def test_large_image_multi_member_gzip_reads_everywhere(tmp_path, monkeypatch):
    from voxflow.io import images

    monkeypatch.setattr(images, "GZIP_CHUNK", 2**16)
    data = np.random.default_rng(3).integers(-1000, 2000, (64, 64, 40), dtype=np.int16)
    assert data.nbytes > 4 * images.GZIP_CHUNK
    path = write_nifti(tmp_path / "big.nii.gz", data, _affine())
    assert path.read_bytes().count(b"\x1f\x8b\x08\x00\x00\x00\x00\x00") > 4  # members
    assert path.read_bytes() == write_nifti(tmp_path / "b2.nii.gz", data, _affine()).read_bytes()
    assert np.array_equal(gzip.decompress(path.read_bytes())[352:], data.tobytes(order="F"))
    assert np.array_equal(np.asarray(nib.load(path).dataobj), data)
    itk = sitk.GetArrayFromImage(sitk.ReadImage(str(path)))  # zlib gzread (ITK)
    assert np.array_equal(itk.transpose(2, 1, 0), data)
