"""DICOM -> NIfTI against real references (dcm2niix, dicom2nifti) and synthetic series."""

from __future__ import annotations

import gzip
import json
import shutil

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import PHI, rotation, write_series
from privacy import Identifiers, dicom_identifiers, report, scan
from scipy import ndimage
from shared_data import DICOM as DATA
from shared_data import needs

from voxflow.errors import VoxflowError
from voxflow.io.dicom import dicom_to_nifti, group_series, plane_name, scan_folder

D2N = DATA / "dicom2nifti"
NIH = DATA / "dcm_qa_nih"
needs_data = needs(DATA)


@pytest.fixture(autouse=True)
def no_identifiers_in_outputs(tmp_path, monkeypatch):
    """Issue 19: no file a test writes under ``tmp_path`` carries an identifier of the DICOM
    folders it converted (collected as each is read; a hit fails the test's teardown)."""
    import voxflow.io.dicom as dicom

    ids, scan_folder = [Identifiers({}, {})], dicom.scan_folder

    def reading(folder):
        ids[0] |= dicom_identifiers([folder])
        return scan_folder(folder)

    monkeypatch.setattr(dicom, "scan_folder", reading)
    yield
    hits = scan([tmp_path], ids[0])
    assert not hits, report(hits)


def canonical(data: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    img = nib.as_closest_canonical(nib.Nifti1Image(np.asarray(data), affine))
    return np.asarray(img.dataobj), img.affine


def assert_same_world(data, affine, ref_data, ref_affine, atol_mm=0.01):
    a, aa = canonical(data, affine)
    b, ba = canonical(ref_data, ref_affine)
    assert a.shape == b.shape
    np.testing.assert_allclose(aa, ba, atol=atol_mm)
    np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=1e-5, atol=1e-4)


def _convert(folder, tmp_path, **kw):
    return dicom_to_nifti(folder, tmp_path / "out.nii.gz", tmp_path / "out.json", **kw)


# ---- real data: dicom2nifti ground truths -----------------------------------------------------
D2N_CASES = [
    "anatomical/001",
    "anatomical/001_implicit",
    "ge/anatomical/001",
    "ge/anatomical/001_implicit",
    "generic/anatomical/001",
    "generic/anatomical/001_implicit",
    "generic/anatomical/002_non_isotropic",
    "generic/compressed/001",
    "generic/compressed_j2k/001",
    "generic/compressed_jpeg/001",
    "generic/compressed_jpegls/001",
    "generic/compressed_rle/001",
    "hitachi/anatomical/001",
    "hitachi/anatomical/001_implicit",
    "philips/anatomical/001",
    "philips/anatomical/001_implicit",
    "siemens/anatomical/001",
    "siemens/anatomical/001_implicit",
    "siemens_multiframe/anatomical/001",
    "failing/slicecount/001",
]


@needs_data
@pytest.mark.parametrize("case", D2N_CASES)
def test_matches_dicom2nifti_ground_truth(case, tmp_path):
    folder = D2N / case
    gt = folder.parent / f"{folder.name}_ground_truth.nii.gz"
    conv = _convert(folder, tmp_path)
    ref = nib.load(gt)
    assert_same_world(conv.data, conv.affine, np.asarray(ref.dataobj), ref.affine)
    written = nib.load(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(written.affine, conv.affine, atol=1e-4)


# ---- real data: dcm2niix references (GE 4D, Siemens mosaic) ------------------------------------
NIH_CASES = {
    "20180918GE/mr_0004": "DCM2NIIX_regression_test_4",
    "20180918GE/mr_0005": "DCM2NIIX_regression_test_5",
    "20180918GE/mr_0006": "DCM2NIIX_regression_test_6",
    "20180918GE/mr_0007": "DCM2NIIX_regression_test_7",
    "20180918Si/mr_0003": "EPI_PE=AP_3",
    "20180918Si/mr_0004": "EPI_PE=PA_4",
    "20180918Si/mr_0005": "EPI_PE=RL_5",
    "20180918Si/mr_0006": "EPI_PE=LR_6",
}


@needs_data
@pytest.mark.parametrize("case", sorted(NIH_CASES))
def test_matches_dcm2niix_reference(case, tmp_path):
    conv = _convert(NIH / "In" / case, tmp_path)
    ref = nib.load(NIH / "Ref" / f"{NIH_CASES[case]}.nii")
    assert conv.data.ndim == 4  # 15 x 10 GE volumes, 2 Siemens mosaic volumes
    assert_same_world(conv.data, conv.affine, np.asarray(ref.dataobj), ref.affine)
    ours = json.loads((tmp_path / "out.json").read_text())
    theirs = json.loads((NIH / "Ref" / f"{NIH_CASES[case]}.json").read_text())
    assert ours["EchoTime"] == pytest.approx(theirs["EchoTime"])
    assert ours["RepetitionTime"] == pytest.approx(theirs["RepetitionTime"])
    assert ours["SeriesDescription"] == theirs["SeriesDescription"]
    skipped = {f["file"] for f in ours["FilesSkipped"]}
    assert "README-Series.txt" in skipped and ours["Volumes"] == ref.shape[3]


# ---- real data: the cases a converter must refuse or handle explicitly -------------------------
@needs_data
@pytest.mark.parametrize(
    ("case", "kwargs", "match"),
    [
        ("failing/notavolume/001", {}, "single slice position \\(not a volume\\)"),
        ("failing/sliceincrement/001", {}, "missing slice\\(s\\): slice steps \\[5.0, 10.0\\]"),
        ("failing/sliceincrement/002", {}, "missing slice\\(s\\)"),
        ("failing/gantrytilting/001", {"gantry_tilt": "refuse"}, "gantry tilt \\(14.00 deg"),
        ("failing/slicecount/001", {"min_slices": 3}, "2 slice position\\(s\\); at least 3"),
        ("ge/anatomical/001_single_slice", {}, "not a volume"),
        ("generic/rgb/001", {}, "3 samples per pixel \\(colour\\)"),
    ],
)
def test_refusals_name_folder_and_reason(case, kwargs, match, tmp_path):
    with pytest.raises(VoxflowError, match=match) as err:
        _convert(D2N / case, tmp_path, **kwargs)
    assert str(D2N / case) in str(err.value) and "\n" not in str(err.value)
    assert not list(tmp_path.iterdir())  # no partial output


@needs_data
def test_oblique_two_slice_series_converted_like_dcm2niix(tmp_path):
    """failing/sliceorientation: oblique, but IPPs follow the normal exactly: a valid volume."""
    folder = D2N / "failing/sliceorientation/001"
    conv = _convert(folder, tmp_path)
    ref = dicom_to_nifti(folder, tmp_path / "ref.nii.gz", backend="dcm2niix")
    assert conv.data.shape == (288, 288, 2)
    assert_same_world(conv.data, conv.affine, ref.data, ref.affine)


@needs_data
def test_gantry_tilt_corrected_like_dcm2niix(tmp_path):
    folder = D2N / "failing/gantrytilting/001"
    conv = _convert(folder, tmp_path)
    info = json.loads((tmp_path / "out.json").read_text())
    assert info["GantryTiltDeg"] == pytest.approx(14.0, abs=0.05)
    # dcm2niix's tilt-corrected output, sampled at our voxel centres in world space
    ref = dicom_to_nifti(folder, tmp_path / "ref.nii.gz", backend="dcm2niix")
    assert ref.data.shape[1] > conv.data.shape[1]  # dcm2niix pads the field of view
    ijk = np.indices(conv.data.shape).reshape(3, -1)
    vox = np.linalg.inv(ref.affine) @ (conv.affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))
    theirs = ndimage.map_coordinates(ref.data.astype(np.float32), vox[:3], order=1, cval=-3000)
    ours = conv.data.reshape(-1).astype(np.float32)
    inside = (ours > -900) & (theirs > -900)
    assert inside.mean() > 0.3
    assert np.median(np.abs(ours[inside] - theirs[inside])) < 1.0


# ---- synthetic series ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    """A CT-like volume (HU) with structure on every axis."""
    g = np.indices((20, 24, 9)).astype(float)
    vol = 40 + 30 * np.sin(g[0] / 3) + 20 * np.cos(g[1] / 4) + 5 * g[2]
    vol[:3] = -1000
    return vol.round()


@pytest.mark.parametrize(
    ("plane", "tilt"),
    [
        ("axial", None),
        ("coronal", None),
        ("sagittal", None),
        ("axial", rotation(17, -8, 25)),
        ("sagittal", rotation(0, 12, 5)),
    ],
    ids=["axial", "coronal", "sagittal", "oblique-axial", "oblique-sagittal"],
)
@pytest.mark.parametrize("order", ["forward", "reversed"])
def test_synthetic_planes_and_storage_order(volume, plane, tilt, order, tmp_path):
    n = volume.shape[2]
    rng = np.random.default_rng(0)
    names = [f"{x:08x}.dcm" for x in rng.permutation(10**6)[:n]]  # shuffled file names
    affine, _ = write_series(
        tmp_path / "in",
        volume,
        plane=plane,
        tilt=tilt,
        names=names,
        instance_order=order,
        slope=1.0,
        intercept=-1024.0,
    )
    conv = _convert(tmp_path / "in", tmp_path)
    assert_same_world(conv.data, conv.affine, volume, affine, atol_mm=1e-3)
    assert conv.data.dtype == np.int16
    assert plane_name(np.r_[np.eye(3)[0], np.eye(3)[1]]) == "axial"


def test_rescale_to_float_when_slope_not_one(volume, tmp_path):
    affine, _ = write_series(tmp_path / "in", volume / 4, slope=0.25, intercept=-1024.0)
    conv = _convert(tmp_path / "in", tmp_path)
    assert conv.data.dtype == np.float32
    assert_same_world(conv.data, conv.affine, volume / 4, affine)


def test_localizer_and_other_series_skipped_and_reported(volume, tmp_path):
    folder = tmp_path / "in"
    affine, _ = write_series(folder / "ct", volume)
    write_series(
        folder / "loc",
        volume[:, :, :3],
        plane="sagittal",
        description="LOCALIZER",
        series_number=1,
        spacing=(2, 2, 20),
    )
    (folder / "README.txt").write_text("export notes")
    (folder / "DICOMDIR").write_bytes(b"\0" * 10)
    conv = _convert(folder, tmp_path)
    assert_same_world(conv.data, conv.affine, volume, affine)
    info = json.loads((tmp_path / "out.json").read_text())
    reasons = {f["file"]: f["reason"] for f in info["FilesSkipped"]}
    assert reasons["README.txt"] == "not a DICOM file"
    assert sum("LOCALIZER" in r for r in reasons.values()) == 3
    assert len(info["FilesUsed"]) == volume.shape[2]
    # selection by description / plane picks the localizer instead
    loc = _convert(folder, tmp_path, description="^locali", plane="sagittal")
    assert loc.data.shape[2] == 3
    with pytest.raises(VoxflowError, match="no series matches description='flair'"):
        _convert(folder, tmp_path, description="flair")


def test_same_uid_mixed_orientation_is_split(volume, tmp_path):
    uid = "1.2.826.0.1.3680043.8.498.1"
    affine, _ = write_series(tmp_path / "in" / "a", volume, series_uid=uid)
    write_series(tmp_path / "in" / "b", volume[:, :, :2], plane="coronal", series_uid=uid)
    slices, _ = scan_folder(tmp_path / "in")
    assert len(group_series(slices)) == 2
    conv = _convert(tmp_path / "in", tmp_path)
    assert_same_world(conv.data, conv.affine, volume, affine)


def test_repeated_positions_give_4d(volume, tmp_path):
    vol4 = np.stack([volume, volume + 7, volume - 3], axis=-1)
    affine, _ = write_series(tmp_path / "in", vol4, repetitions=3, names=None)
    conv = _convert(tmp_path / "in", tmp_path)
    assert conv.data.shape == (*volume.shape, 3)
    for t in range(3):
        assert_same_world(conv.data[..., t], conv.affine, vol4[..., t], affine)


def test_missing_slice_refused(volume, tmp_path):
    write_series(tmp_path / "in", volume, skip_slices=(4,))
    with pytest.raises(VoxflowError, match=r"missing slice\(s\): slice steps \[2.5, 5.0\]"):
        _convert(tmp_path / "in", tmp_path)
    assert not (tmp_path / "out.nii.gz").exists()


def test_corrupt_file_refused_with_its_name(volume, tmp_path):
    _, paths = write_series(tmp_path / "in", volume)
    raw = paths[3].read_bytes()
    for cut, reason in [
        (400, "corrupt DICOM file"),
        (len(raw) - 100, "cannot decode pixel data"),
        (200, "corrupt DICOM file"),
    ]:
        paths[3].write_bytes(raw[:cut])
        with pytest.raises(VoxflowError, match=f"{paths[3].name}: {reason}"):
            _convert(tmp_path / "in", tmp_path)
        assert not (tmp_path / "out.nii.gz").exists()


def test_synthetic_ct_gantry_tilt_is_resampled(volume, tmp_path):
    # slices step along z while the image plane is tilted 10 deg about x: a tilted gantry
    tilt = rotation(10, 0, 0)
    normal = tilt @ np.array([0, 0, 1.0])
    step = 2.5 * normal
    offset = np.array([0, 0, 2.5 / normal[2]]) - step  # IPP moves purely along z
    write_series(tmp_path / "in", volume, tilt=tilt, ipp_offset_per_slice=tuple(offset))
    conv = _convert(tmp_path / "in", tmp_path)
    info = json.loads((tmp_path / "out.json").read_text())
    assert info["GantryTiltDeg"] == pytest.approx(10.0, abs=0.01)
    assert np.allclose(
        np.linalg.norm(conv.affine[:3, :3], axis=0),
        [0.9, 0.8, 2.5],
        atol=1e-3,
    )
    write_series(
        tmp_path / "mr", volume, tilt=tilt, ipp_offset_per_slice=tuple(offset), modality="MR"
    )
    with pytest.raises(VoxflowError, match="off the slice normal"):
        _convert(tmp_path / "mr", tmp_path / "mr-out")


def test_no_phi_in_any_output(volume, tmp_path):
    names = [f"DOE_JOHNATHAN_{k:03d}.dcm" for k in range(volume.shape[2])]
    write_series(tmp_path / "in", volume, names=names)
    _convert(tmp_path / "in", tmp_path)
    nifti = gzip.decompress((tmp_path / "out.nii.gz").read_bytes())
    sidecar = (tmp_path / "out.json").read_text()
    for value in PHI.values():
        for part in value.split("^"):
            assert part.encode() not in nifti, part
            assert part.lower() not in sidecar.lower(), part
    assert json.loads(sidecar)["FilesUsed"][0] == "REDACTED_REDACTED_000.dcm"


def test_dcm2niix_backend_same_volume(volume, tmp_path):
    affine, _ = write_series(tmp_path / "in", volume, plane="coronal", tilt=rotation(5, 0, 9))
    conv = _convert(tmp_path / "in", tmp_path, backend="dcm2niix")
    assert_same_world(conv.data, conv.affine, volume, affine, atol_mm=1e-3)
    info = json.loads((tmp_path / "out.json").read_text())
    assert info["Converter"] == "dcm2niix" and "PatientName" not in info


def test_cli(volume, tmp_path):
    from voxflow.cli import main

    write_series(tmp_path / "in", volume)
    assert main(["dicom2nifti", str(tmp_path / "in"), str(tmp_path / "ct.nii.gz")]) == 0
    assert (tmp_path / "ct.json").is_file()
    shutil.rmtree(tmp_path / "in")
    assert main(["dicom2nifti", str(tmp_path / "in"), str(tmp_path / "x.nii.gz")]) == 1


@needs_data
@pytest.mark.parametrize(
    "folder",
    [
        NIH / "In/20180918GE/mr_0004",
        NIH / "In/20180918Si/mr_0003",
        D2N / "philips/anatomical/001",
        D2N / "siemens_multiframe/anatomical/001",
    ],
    ids=["ge-4d", "siemens-mosaic", "philips", "multiframe"],
)
def test_real_data_phi_stays_out(folder, tmp_path):
    import pydicom

    from voxflow.io.dicom import PHI_TAGS

    values = set()
    for path in folder.iterdir():
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            for tag in PHI_TAGS:
                value = str(ds.get(tag, "") or "").strip()
                if len(value) >= 4 and value.lower() not in ("anonymous", "anonymized"):
                    values.add(value)
    assert values, "the real headers carry identifying values to look for"
    _convert(folder, tmp_path)
    nifti = gzip.decompress((tmp_path / "out.nii.gz").read_bytes())
    sidecar = (tmp_path / "out.json").read_text()
    for value in values:
        assert value.encode() not in nifti and value not in sidecar, value
