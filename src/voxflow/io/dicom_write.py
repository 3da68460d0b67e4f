"""Write a volume as a single-frame DICOM series (the phantom cohorts' scanner output).

Phantoms write their images the way scanners do, so the demo goes through the same DICOM stage
as real data: one file per slice, ``ImagePositionPatient``/``ImageOrientationPatient`` in LPS,
CT values stored as unsigned integers with ``RescaleIntercept`` -1024. The headers carry made-up
identifiers the way a hospital export does (:func:`identity`: a patient name, an MRN, a birth
date, an accession number, the institution and referring physician, the study date), none of
them the phantom's folder ID, so the privacy tests can look for them in every output. They and
the UIDs are derived from the patient and a seed, so a rerun writes byte-identical files and
Snakemake's caches stay valid.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxflow.errors import VoxflowError
from voxflow.io.atomic import atomic_path
from voxflow.io.images import LPS_TO_RAS
from voxflow.seeding import rng

UID_ROOT = "1.2.826.0.1.3680043.10.1491."  # under pydicom's example arc; phantom data only

# Made-up names for the phantom identities: distinctive (no English word, no substring of a
# file name the phantoms or the workflow write), so a leak search has no false hits.
FAMILY_NAMES = (
    "OKONKWO", "LINDQVIST", "HAVERKAMP", "VASQUEZ", "BRANDAO", "KOWALCZYK", "FITZGERALD",
    "NAKAMURA", "ABERNATHY", "DRAGOMIR", "ESPOSITO", "HALLORAN", "MAKONNEN", "ROSENTHAL",
    "SZABOLCS", "TREMBLAY",
)  # fmt: skip
GIVEN_NAMES = (
    "ADAEZE", "MATTHIAS", "LEOCADIA", "BARNABY", "ODALYS", "KRISTOF", "PERPETUA", "ANSELM",
    "YOLANDA", "GRZEGORZ", "FENELLA", "HORATIO", "ISOLDE", "LEANDER", "MIRABEL", "THADDEUS",
)  # fmt: skip
INSTITUTION = "HALVERSEN MEMORIAL HOSPITAL"
REFERRING = "PEMBERTON^AUGUSTINE"


def _uid(*keys: object) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(prefix=UID_ROOT, entropy_srcs=[str(k) for k in keys])


def identity(patient_id: str, seed: int = 0) -> dict[str, str]:
    """The identifying header values of one phantom patient (DICOM keyword -> value), as a
    hospital export carries them: ``FAMILY^GIVEN`` name, a 10-digit MRN, a birth date
    1935-1990 and a 12-digit accession number, all drawn from ``seed`` and ``patient_id``; the study
    date (2015-2021) is the same for every series of the patient."""
    g = rng(seed, "dicom-identity", patient_id)
    family, given = g.integers(len(FAMILY_NAMES)), g.integers(len(GIVEN_NAMES))
    birth = np.datetime64("1935-01-01") + g.integers(56 * 365)
    study = np.datetime64("2015-01-01") + g.integers(7 * 365)
    return {
        "PatientName": f"{FAMILY_NAMES[family]}^{GIVEN_NAMES[given]}",
        "PatientID": str(g.integers(1_000_000_000, 10_000_000_000)),
        "PatientBirthDate": str(birth).replace("-", ""),
        "AccessionNumber": str(g.integers(100_000_000_000, 1_000_000_000_000)),
        "InstitutionName": INSTITUTION,
        "ReferringPhysicianName": REFERRING,
        "StudyDate": str(study).replace("-", ""),
    }


def write_series(
    folder: str | Path,
    data: np.ndarray,
    affine_ras: np.ndarray,
    patient_id: str,
    modality: str = "CT",
    description: str = "HEAD",
    intercept: float = -1024.0,
    seed: int = 0,
    series_number: int = 2,
    prefix: str = "IM",
    series_key: str = "series",
    image_type: Sequence[str] | None = None,
    numbers: Sequence[int] | None = None,
) -> list[Path]:
    """Write ``data`` (i = column, j = row, k = slice) with voxel-to-RAS ``affine_ras`` as one
    file per slice under ``folder`` (``IM0001.dcm``...), with the identifiers of
    ``identity(patient_id, seed)``. Values are rounded to integers and
    stored as ``value - intercept`` (uint16). Returns the written paths.

    A second series in the same folder (e.g. a scout) needs its own ``series_key`` (it seeds the
    series and SOP instance UIDs), ``prefix`` (file names) and ``series_number``; the defaults
    reproduce the single-series files byte for byte. ``image_type`` sets ImageType if given.
    ``numbers`` (one per slice, in slice order) replaces the InstanceNumbers 1..n and names the
    files ``<prefix><number>.dcm`` without zero padding (as Kaggle's ``Image-<n>.dcm``)."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, MRImageStorage

    if data.ndim != 3:
        raise VoxflowError(f"{folder}: a DICOM series needs a 3D volume, got shape {data.shape}")
    lps = LPS_TO_RAS @ np.asarray(affine_ras, float)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    rowdir, coldir, normal = (lps[:3, a] / spacing[a] for a in range(3))
    if abs(np.dot(np.cross(rowdir, coldir), normal) - 1) > 1e-3:
        raise VoxflowError(f"{folder}: the affine must be orthogonal and right-handed for DICOM")
    stored = np.round(data - intercept)
    if stored.min() < 0 or stored.max() > 65535:
        raise VoxflowError(f"{folder}: values out of the uint16 range after the intercept")
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    series_uid, study_uid = _uid(seed, patient_id, series_key), _uid(seed, patient_id, "study")
    sop_keys = ("slice",) if series_key == "series" else (series_key, "slice")
    if numbers is not None and len(numbers) != data.shape[2]:
        raise VoxflowError(f"{folder}: {len(numbers)} numbers for {data.shape[2]} slices")
    ids = identity(patient_id, seed)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(data.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = _uid(seed, patient_id, *sop_keys, k)
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        number = k + 1 if numbers is None else int(numbers[k])
        name = f"{number:04d}" if numbers is None else str(number)
        path = folder / f"{prefix}{name}.dcm"
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, series_uid
        for keyword, value in ids.items():
            setattr(ds, keyword, value)
        ds.Modality, ds.Manufacturer = modality, "voxflow-phantom"
        ds.SeriesDescription, ds.SeriesNumber = description, series_number
        if image_type is not None:
            ds.ImageType = list(image_type)
        ds.InstanceNumber, ds.AcquisitionNumber = number, 1
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*rowdir, *coldir)]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in lps[:3, 3] + k * lps[:3, 2]]
        ds.PixelSpacing = [f"{spacing[1]:.4f}", f"{spacing[0]:.4f}"]  # row, column spacing
        ds.SliceThickness = f"{spacing[2]:.4f}"
        ds.RescaleSlope, ds.RescaleIntercept = "1", f"{intercept:g}"
        pixels = np.ascontiguousarray(stored[:, :, k].T.astype(np.uint16))
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.PixelData = pixels.tobytes()
        with atomic_path(path) as tmp:
            pydicom.dcmwrite(tmp, ds, enforce_file_format=True)
        paths.append(path)
    return paths
