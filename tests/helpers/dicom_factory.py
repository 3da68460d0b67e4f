"""Write synthetic DICOM series with pydicom, with exact known geometry (test helper)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from voxflow.io.images import LPS_TO_RAS

PHI = {
    "PatientName": "DOE^JOHNATHAN",
    "PatientID": "PID9081726",
    "PatientBirthDate": "19510203",
    "AccessionNumber": "ACC55512345",
    "InstitutionName": "Saint Elsewhere Hospital",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "StudyDate": "20190417",
}


def rotation(deg_x: float = 0, deg_y: float = 0, deg_z: float = 0) -> np.ndarray:
    ax, ay, az = np.deg2rad([deg_x, deg_y, deg_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


PLANES = {  # (row direction, column direction) in LPS, as scanners store them
    "axial": ([1, 0, 0], [0, 1, 0]),
    "coronal": ([1, 0, 0], [0, 0, -1]),
    "sagittal": ([0, 1, 0], [0, 0, -1]),
}


def write_series(
    folder: Path,
    data: np.ndarray,
    plane: str = "axial",
    tilt: np.ndarray | None = None,
    spacing: tuple[float, float, float] = (0.9, 0.8, 2.5),
    origin: tuple[float, float, float] = (-100.0, -120.0, -40.0),
    modality: str = "CT",
    slope: float = 1.0,
    intercept: float = 0.0,
    series_uid: str | None = None,
    description: str = "HEAD 5mm",
    series_number: int = 2,
    names: list[str] | None = None,
    instance_order: str = "forward",
    repetitions: int = 1,
    ipp_offset_per_slice: tuple[float, float, float] = (0, 0, 0),
    skip_slices: tuple[int, ...] = (),
) -> tuple[np.ndarray, list[Path]]:
    """Write ``data`` (i=column, j=row, k=slice[, t]) as one single-frame file per slice.

    Stored values are ``(data - intercept) / slope``. Returns the expected RAS affine and paths.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rowdir, coldir = (np.asarray(v, float) for v in PLANES[plane])
    if tilt is not None:
        rowdir, coldir = tilt @ rowdir, tilt @ coldir
    normal = np.cross(rowdir, coldir)
    col_sp, row_sp, slice_sp = spacing
    series_uid = series_uid or generate_uid()
    data = data if data.ndim == 4 else data[..., None]
    nz = data.shape[2]
    paths = []
    count = 0
    for t in range(repetitions):
        for k in range(nz):
            if k in skip_slices:
                continue
            ipp = np.asarray(origin) + k * slice_sp * normal + k * np.asarray(ipp_offset_per_slice)
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            name = names[count] if names else f"IM{count:04d}.dcm"
            path = folder / name
            ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID = "1.2.3.4"
            ds.SeriesInstanceUID = series_uid
            ds.Modality = modality
            ds.Manufacturer = "voxflow-test"
            ds.SeriesDescription = description
            ds.SeriesNumber = series_number
            for tag, value in PHI.items():
                setattr(ds, tag, value)
            n_total = nz * repetitions
            ds.InstanceNumber = count + 1 if instance_order == "forward" else n_total - count
            ds.AcquisitionNumber = t + 1
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*rowdir, *coldir)]
            ds.ImagePositionPatient = [f"{v:.4f}" for v in ipp]
            ds.PixelSpacing = [f"{row_sp}", f"{col_sp}"]
            ds.SliceThickness = f"{slice_sp}"
            ds.RescaleSlope = f"{slope}"
            ds.RescaleIntercept = f"{intercept}"
            ds.EchoTime = "30"
            ds.RepetitionTime = "2000"
            stored = np.round((data[:, :, k, t] - intercept) / slope).astype(np.int16).T
            ds.Rows, ds.Columns = stored.shape
            ds.SamplesPerPixel = 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated = ds.BitsStored = 16
            ds.HighBit = 15
            ds.PixelRepresentation = 1
            ds.PixelData = np.ascontiguousarray(stored).tobytes()
            pydicom.dcmwrite(path, ds, enforce_file_format=True)
            paths.append(path)
            count += 1
    lps = np.eye(4)
    lps[:3, 0], lps[:3, 1], lps[:3, 2] = rowdir * col_sp, coldir * row_sp, normal * slice_sp
    lps[:3, 3] = origin
    return LPS_TO_RAS @ lps, paths
