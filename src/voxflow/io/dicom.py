"""DICOM series -> NIfTI volume, with the geometry checks of dcm2niix.

Pipeline: :func:`scan_folder` reads every file's header (non-DICOM files are skipped and logged,
a corrupt DICOM file is refused), :func:`group_series` groups slices by SeriesInstanceUID and
splits a series whose slices differ in orientation, image size, echo or samples per pixel,
:func:`select_series` picks the requested one, and :func:`load_series` stacks it:

- slices are sorted by their position along the slice normal ``IPP . (row x col)``, never by file
  name or InstanceNumber; RescaleSlope/Intercept are applied per slice (CT in HU);
- the affine comes from ImageOrientationPatient, ImagePositionPatient, PixelSpacing and the
  measured slice step, converted from DICOM LPS to NIfTI RAS;
- slice positions repeated k times (a 4D series) give k volumes (ordered by acquisition);
- enhanced multi-frame objects are expanded through their per-frame functional groups, Siemens
  mosaics through nibabel's mosaic reader;
- irregular geometry gets a decision: gantry tilt (CT) is corrected by resampling each slice,
  with a logged warning; missing slices, unequal spacing, slice positions off the slice normal
  outside CT, too few slices, a single position (not a volume), uneven repetitions, colour
  images and truncated or unreadable files are refused with one line that names the folder (or
  file) and the reason. Oblique slices whose positions follow the normal are simply oblique.

The JSON sidecar holds acquisition facts only: no patient identifiers (see :data:`SIDECAR_TAGS`).
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import write_json
from voxflow.io.images import LPS_TO_RAS, write_nifti

log = logging.getLogger(__name__)

# Acquisition facts copied into the sidecar (DICOM keyword -> sidecar key). Nothing that
# identifies a patient, a study date, an institution or an operator is ever copied.
SIDECAR_TAGS = {
    "Modality": "Modality",
    "Manufacturer": "Manufacturer",
    "ManufacturerModelName": "ManufacturersModelName",
    "MagneticFieldStrength": "MagneticFieldStrength",
    "SeriesDescription": "SeriesDescription",
    "ProtocolName": "ProtocolName",
    "SeriesNumber": "SeriesNumber",
    "ImageType": "ImageType",
    "BodyPartExamined": "BodyPartExamined",
    "ScanningSequence": "ScanningSequence",
    "SliceThickness": "SliceThickness",
    "SpacingBetweenSlices": "SpacingBetweenSlices",
    "FlipAngle": "FlipAngle",
    "KVP": "KVP",
    "ConvolutionKernel": "ConvolutionKernel",
    "ContrastBolusAgent": "ContrastBolusAgent",
}
MS_TO_S = {
    "EchoTime": "EchoTime",
    "RepetitionTime": "RepetitionTime",
    "InversionTime": "InversionTime",
}
# Tags whose values must never reach an output (checked by the tests too).
PHI_TAGS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientAddress",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StudyID",
    "StudyDate",
    "StudyTime",
)


@dataclass
class Slice:
    """One 2D image: a single-frame file, one frame of a multi-frame file, or a mosaic file."""

    path: Path
    frame: int | None
    series_uid: str
    iop: np.ndarray
    ipp: np.ndarray
    pixel_spacing: tuple[float, float]  # (between rows, between columns) in mm
    rows: int
    cols: int
    slope: float
    intercept: float
    order: tuple  # acquisition order, to sort repetitions of one position
    echo: str
    samples: int
    mosaic: bool
    meta: Any = field(repr=False)  # the pydicom dataset (header only)

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.iop[:3], self.iop[3:])


@dataclass
class Series:
    """Slices that can form one volume (or one 4D series)."""

    uid: str
    slices: list[Slice]

    @property
    def meta(self) -> Any:
        return self.slices[0].meta

    @property
    def description(self) -> str:
        return str(self.meta.get("SeriesDescription", ""))

    @property
    def plane(self) -> str:
        return plane_name(self.slices[0].iop)

    def label(self) -> str:
        number = self.meta.get("SeriesNumber", "?")
        return f"series {number} '{self.description}' ({self.plane}, {len(self.slices)} images)"


def plane_name(iop: np.ndarray, oblique_deg: float = 10.0) -> str:
    """axial / coronal / sagittal from the slice normal; 'oblique' beyond ``oblique_deg``."""
    n = np.abs(np.cross(iop[:3], iop[3:]))
    axis = int(np.argmax(n))
    name = ("sagittal", "coronal", "axial")[axis]
    return name if n[axis] >= np.cos(np.deg2rad(oblique_deg)) else f"oblique-{name}"


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _first(seq_item: Any, name: str) -> Any:
    seq = seq_item.get(name) if seq_item is not None else None
    return seq[0] if seq else None


def _slices_from_dataset(path: Path, ds: Any) -> list[Slice]:
    common = dict(
        path=path,
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        rows=int(ds.get("Rows", 0)),
        cols=int(ds.get("Columns", 0)),
        samples=int(ds.get("SamplesPerPixel", 1)),
        meta=ds,
    )
    echo = str(ds.get("EchoNumbers", ""))
    if "PerFrameFunctionalGroupsSequence" in ds:  # enhanced multi-frame
        shared = _first(ds, "SharedFunctionalGroupsSequence")
        out = []
        for k, frame in enumerate(ds.PerFrameFunctionalGroupsSequence):

            def item(name: str, frame: Any = frame) -> Any:
                return _first(frame, name) or _first(shared, name)

            pos, ori, pix = (
                item("PlanePositionSequence"),
                item("PlaneOrientationSequence"),
                item("PixelMeasuresSequence"),
            )
            if pos is None or ori is None or pix is None:
                raise input_error(
                    path,
                    f"multi-frame object lacks plane position/orientation/"
                    f"pixel spacing for frame {k + 1}",
                    "Cannot place it in space",
                )
            rescale = item("PixelValueTransformationSequence")
            content = item("FrameContentSequence")
            stack = tuple(content.get("DimensionIndexValues", [])) if content else ()
            out.append(
                Slice(
                    frame=k,
                    iop=np.asarray(ori.ImageOrientationPatient, float),
                    ipp=np.asarray(pos.ImagePositionPatient, float),
                    pixel_spacing=tuple(float(v) for v in pix.PixelSpacing),
                    slope=_float(rescale.get("RescaleSlope") if rescale else None, 1.0),
                    intercept=_float(rescale.get("RescaleIntercept") if rescale else None, 0.0),
                    order=(
                        int(content.get("TemporalPositionIndex", 0)) if content else 0,
                        stack,
                        k,
                    ),
                    echo=echo,
                    mosaic=False,
                    **common,
                )
            )
        return out
    if "ImageOrientationPatient" not in ds or "ImagePositionPatient" not in ds:
        raise input_error(
            path,
            "no ImageOrientationPatient/ImagePositionPatient",
            "Not a cross-sectional image (secondary capture, scout?)",
        )
    acq_time = str(ds.get("AcquisitionTime", ds.get("ContentTime", "")))
    order = (
        int(_float(ds.get("TemporalPositionIdentifier"), 0)),
        int(_float(ds.get("AcquisitionNumber"), 0)),
        acq_time,
        int(_float(ds.get("InstanceNumber"), 0)),
    )
    spacing = ds.get("PixelSpacing", ds.get("ImagerPixelSpacing"))
    if spacing is None:
        raise input_error(path, "no PixelSpacing", "Cannot size the voxels")
    return [
        Slice(
            frame=None,
            iop=np.asarray(ds.ImageOrientationPatient, float),
            ipp=np.asarray(ds.ImagePositionPatient, float),
            pixel_spacing=(float(spacing[0]), float(spacing[1])),
            slope=_float(ds.get("RescaleSlope"), 1.0),
            intercept=_float(ds.get("RescaleIntercept"), 0.0),
            order=order,
            echo=echo,
            mosaic="MOSAIC" in [str(t).upper() for t in ds.get("ImageType", [])],
            **common,
        )
    ]


def scan_folder(folder: str | Path) -> tuple[list[Slice], list[tuple[str, str]]]:
    """Read the header of every file under ``folder``; returns (slices, skipped files + reason).

    Files without the DICOM preamble, DICOMDIRs and objects without pixel data are skipped (and
    logged). A file that claims to be DICOM but cannot be parsed is refused with its name.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    folder = Path(folder)
    if not folder.is_dir():
        raise input_error(folder, "DICOM folder not found", "Check the path in the config")
    slices: list[Slice] = []
    skipped: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            try:
                # large values (pixel data) are deferred: read from the file when decoded
                ds = pydicom.dcmread(path, defer_size="64 KB")
            except InvalidDicomError:
                ds = _named_as_image(path)
                if ds is None:
                    skipped.append((rel, "not a DICOM file"))
                    continue
            except Exception as err:
                raise input_error(
                    path,
                    f"corrupt DICOM file ({type(err).__name__}: {err})",
                    "Remove or re-export it",
                ) from err
            if not any(t in ds for t in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                sop = getattr(ds.file_meta.get("MediaStorageSOPClassUID", ""), "name", "")
                if "Rows" in ds or "Image Storage" in str(sop):  # an image without pixels
                    raise input_error(
                        path,
                        "corrupt DICOM file (image header but no pixel data: truncated?)",
                        "Remove or re-export it",
                    )
                skipped.append((rel, f"no pixel data ({ds.get('SOPClassUID', 'unknown')})"))
                continue
            slices.extend(_slices_from_dataset(path, ds))
    for rel, reason in skipped:
        log.info("skipped %s: %s", rel, reason)
    if not slices:
        raise input_error(folder, "no DICOM images found", "Is this the right folder?")
    _one_patient(slices, folder)
    return slices, skipped


DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def _named_as_image(path: Path) -> Any:
    """A file without the DICOM preamble: None (skipped) unless it is named as a DICOM image
    (``.dcm``, ``.ima``); then it must parse as one (old preamble-less files do), else it is
    a broken export and refused."""
    import pydicom

    if path.suffix.lower() not in DICOM_SUFFIXES:
        return None
    try:
        ds = pydicom.dcmread(path, defer_size="64 KB", force=True)
        if "PixelData" in ds and "Rows" in ds:
            return ds
    except Exception:  # noqa: BLE001 (any parse failure means: not an image)
        pass
    raise input_error(
        path, "named as a DICOM image but is not a DICOM file", "Remove it or re-export the series"
    )


def _one_patient(slices: list[Slice], folder: Path) -> None:
    """Refuse a folder whose images belong to more than one patient (a mixed-up export). The
    message names two files, never the identifiers, and blanks out path parts that carry them."""
    first: dict[str, Slice] = {}
    for s in slices:
        first.setdefault(str(s.meta.get("PatientID", "")), s)
    if len(first) > 1:
        a, b = list(first.values())[:2]
        message = (
            f"{folder}: images of {len(first)} patients in one folder (PatientID differs "
            f"between {a.path.relative_to(folder)} and {b.path.relative_to(folder)})"
        )
        for s in first.values():
            message = _redact(message, s.meta)
        raise VoxflowError(f"{message}. Keep one patient's series per folder")


def group_series(slices: list[Slice]) -> list[Series]:
    """Group by SeriesInstanceUID, then split by orientation, image size, echo and samples."""
    groups: dict[tuple, list[Slice]] = defaultdict(list)
    for s in slices:
        key = (s.series_uid, tuple(np.round(s.iop, 3)), s.rows, s.cols, s.echo, s.samples)
        groups[key].append(s)
    out = [Series(key[0], members) for key, members in groups.items()]
    out.sort(key=lambda s: (str(s.meta.get("SeriesNumber", "")), s.uid, -len(s.slices)))
    return out


def select_series(
    series: list[Series],
    folder: str | Path,
    description: str | None = None,
    plane: str | None = None,
) -> Series:
    """The series matching ``description`` (regex) and ``plane``; the one with most images wins."""
    candidates = [
        s
        for s in series
        if (description is None or re.search(description, s.description, re.I))
        and (plane is None or s.plane.endswith(plane))
    ]
    if not candidates:
        found = "; ".join(s.label() for s in series)
        raise input_error(
            folder,
            f"no series matches description={description!r} plane={plane!r}; found: {found}",
            "Adjust the dicom series filter",
        )
    chosen = max(candidates, key=lambda s: len(s.slices))
    ties = [s for s in candidates if len(s.slices) == len(chosen.slices)]
    if len(ties) > 1:
        raise input_error(
            folder,
            f"mixed series: {len(ties)} series tie for the most images "
            f"({'; '.join(s.label() for s in ties)})",
            "Keep one series per folder, or choose one with the dicom series description/plane",
        )
    for s in series:
        if s is not chosen:
            log.info("skipped %s", s.label())
    log.info("chose %s", chosen.label())
    return chosen


def _pixels(s: Slice) -> np.ndarray:
    ds = s.meta
    try:
        arr = ds.pixel_array
    except Exception as err:
        syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
        raise input_error(
            s.path,
            f"cannot decode pixel data ({syntax}: {err})",
            "Install pylibjpeg, pylibjpeg-libjpeg and pylibjpeg-openjpeg",
        ) from err
    if s.frame is not None:
        arr = arr[s.frame] if int(ds.get("NumberOfFrames", 1)) > 1 else arr
    return arr


@dataclass
class Conversion:
    """A converted series: data (i, j, k[, t]), RAS affine and what the sidecar reports."""

    data: np.ndarray
    affine: np.ndarray
    info: dict[str, Any]


def load_series(
    series: Series,
    folder: str | Path,
    min_slices: int = 2,
    gantry_tilt: str = "resample",
    spacing_tolerance: float = 0.05,
) -> Conversion:
    """Stack a series into a volume (4D when slice positions repeat); see the module docstring.

    ``spacing_tolerance`` is the largest relative deviation of a slice step from the median.
    """
    if series.slices[0].samples != 1:
        raise input_error(
            folder,
            f"{series.label()} has {series.slices[0].samples} samples per pixel (colour)",
            "Only greyscale series are volumes for these studies",
        )
    if series.slices[0].mosaic:
        return _load_mosaic(series, folder)
    normal = series.slices[0].normal
    pos = np.array([s.ipp @ normal for s in series.slices])
    uniq = np.unique(np.round(pos, 2))
    counts = Counter(np.round(pos, 2).tolist())
    reps = set(counts.values())
    if len(uniq) < max(min_slices, 2):
        what = (
            "a single slice position (not a volume)"
            if len(uniq) == 1
            else f"{len(uniq)} slice position(s)"
        )
        raise input_error(folder, f"{series.label()}: {what}; at least {max(min_slices, 2)} needed")
    if len(reps) != 1:
        raise input_error(
            folder,
            f"{series.label()}: slice positions repeat unevenly ({sorted(reps)} times)",
            "A multi-volume series with missing images?",
        )
    n_vol = reps.pop()
    order = sorted(
        range(len(series.slices)), key=lambda i: (round(pos[i], 2), series.slices[i].order)
    )
    grid = [[series.slices[order[z * n_vol + t]] for z in range(len(uniq))] for t in range(n_vol)]
    first = grid[0]
    steps = np.diff([s.ipp @ normal for s in first])
    median = float(np.median(steps))
    off = np.abs(steps - median) > spacing_tolerance * abs(median)
    if off.any():
        big = steps[off].max()
        why = "missing slice(s)" if big > 1.5 * median else "unequal slice spacing"
        raise input_error(
            folder,
            f"{series.label()}: {why}: slice steps "
            f"{np.round(np.unique(np.round(steps, 3)), 3).tolist()} mm",
            "voxflow does not interpolate missing or irregular slices",
        )
    step_vec = (first[-1].ipp - first[0].ipp) / (len(first) - 1)
    inplane = step_vec - (step_vec @ normal) * normal
    tilt_deg = float(np.degrees(np.arctan2(np.linalg.norm(inplane), abs(step_vec @ normal))))
    modality = str(series.meta.get("Modality", ""))
    tilted = tilt_deg > 0.05
    if tilted and (modality != "CT" or gantry_tilt == "refuse"):
        why = "gantry tilt" if modality == "CT" else "slice positions off the slice normal"
        raise input_error(
            folder,
            f"{series.label()}: {why} ({tilt_deg:.2f} deg, inconsistent orientation)",
            "Refusing rather than writing a sheared volume",
        )
    rows, cols = first[0].rows, first[0].cols
    float_out = any(s.slope != 1 or s.intercept != round(s.intercept) for s in series.slices)
    vols = []
    for t in range(n_vol):
        vol = np.empty((len(first), rows, cols), np.float32 if float_out else np.int32)
        for z, s in enumerate(grid[t]):
            px = _pixels(s)
            if px.shape != (rows, cols):
                raise input_error(s.path, f"image size {px.shape} differs from {(rows, cols)}")
            if float_out:
                vol[z] = px * np.float32(s.slope) + np.float32(s.intercept)
            else:  # slope 1, integer intercept: stay in integers (CT HU)
                vol[z] = px
                vol[z] += int(s.intercept)
        vols.append(vol)
    data = np.stack(vols, axis=-1) if n_vol > 1 else vols[0]
    data = np.moveaxis(data, (0, 1, 2), (2, 1, 0))  # (z, row, col) -> (i=col, j=row, k=z)
    row_sp, col_sp = first[0].pixel_spacing
    rowdir, coldir = first[0].iop[:3], first[0].iop[3:]
    slice_vec = (step_vec @ normal) * normal
    if tilted:
        data = _untilt(data, first, normal, rowdir, coldir, (row_sp, col_sp))
        log.warning(
            "%s: gantry tilt %.2f deg corrected by resampling each slice in-plane", folder, tilt_deg
        )
    lps = np.eye(4)
    lps[:3, 0] = rowdir * col_sp
    lps[:3, 1] = coldir * row_sp
    lps[:3, 2] = slice_vec
    lps[:3, 3] = first[0].ipp
    data = _narrow(data)
    info = {
        "plane": series.plane,
        "slices": len(first),
        "volumes": n_vol,
        "slice_step_mm": round(abs(median), 6),
        "gantry_tilt_deg": round(tilt_deg, 3) if tilted else 0.0,
        "rescale": sorted({(s.slope, s.intercept) for s in series.slices})[:4],
    }
    return Conversion(data, LPS_TO_RAS @ lps, info)


def _untilt(data, first, normal, rowdir, coldir, spacing) -> np.ndarray:
    """Shift each slice in-plane so the stack lies along the normal (gantry-tilt correction)."""
    from scipy import ndimage

    row_sp, col_sp = spacing
    out = np.empty(data.shape, np.float32)
    fill = float(data.min())
    for z, s in enumerate(first):
        d = s.ipp - first[0].ipp
        d = d - (d @ normal) * normal
        # new[i] = old[i - in-plane offset]: ndimage.shift's convention
        shift = ((d @ rowdir) / col_sp, (d @ coldir) / row_sp)  # voxels along i, j
        out[..., z] = ndimage.shift(
            data[..., z].astype(np.float32), shift, order=1, mode="constant", cval=fill
        )
    return out if np.issubdtype(data.dtype, np.floating) else np.round(out)


def _narrow(data: np.ndarray) -> np.ndarray:
    """Smallest of int16/uint16/int32 that holds integer data exactly; floats become float32."""
    if np.issubdtype(data.dtype, np.floating):
        if (
            np.all(np.mod(data, 1) == 0)
            and data.size
            and data.min() >= -32768
            and data.max() <= 32767
        ):
            return data.astype(np.int16)
        return data.astype(np.float32)
    lo, hi = int(data.min()), int(data.max())
    for dt in (np.int16, np.uint16, np.int32):
        if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max:
            return data.astype(dt)
    return data


def _load_mosaic(series: Series, folder: str | Path) -> Conversion:
    import warnings

    import pydicom

    with warnings.catch_warnings():  # nibabel.nicom announces itself as experimental
        warnings.simplefilter("ignore", UserWarning)
        from nibabel.nicom import dicomwrappers

    vols, affine = [], None
    for s in sorted(series.slices, key=lambda s: s.order):
        w = dicomwrappers.wrapper_from_data(pydicom.dcmread(s.path))
        if not isinstance(w, dicomwrappers.MosaicWrapper):
            raise input_error(s.path, "marked MOSAIC but its Siemens CSA header cannot be read")
        a = w.affine
        if affine is not None and not np.allclose(a, affine, atol=1e-3):
            raise input_error(s.path, "mosaic geometry differs from the series' first volume")
        affine = a
        vols.append(w.get_data())
    data = np.stack(vols, axis=-1) if len(vols) > 1 else vols[0]
    info = {
        "plane": series.plane,
        "slices": int(data.shape[2]),
        "volumes": len(vols),
        "slice_step_mm": round(float(np.linalg.norm(affine[:3, 2])), 6),
        "gantry_tilt_deg": 0.0,
        "mosaic": True,
        "rescale": [],
    }
    return Conversion(_narrow(np.asarray(data)), LPS_TO_RAS @ affine, info)


def _json_value(v: Any) -> Any:
    """pydicom value -> JSON: IS/DS are int/float subclasses, multi-values become lists."""
    if isinstance(v, (int, float)):
        return int(v) if isinstance(v, int) else float(v)
    if isinstance(v, (list, tuple)) or type(v).__name__ == "MultiValue":
        return [_json_value(x) for x in v]
    return str(v)


def sidecar(
    series: Series,
    conv: Conversion,
    folder: Path,
    used: list[Slice],
    skipped: list[tuple[str, str]],
    backend: str,
) -> dict[str, Any]:
    """Acquisition facts for the user; no patient identifiers."""
    meta = series.meta
    out: dict[str, Any] = {}
    for tag, key in SIDECAR_TAGS.items():
        if tag in meta and meta.get(tag) not in (None, ""):
            out[key] = _json_value(meta.get(tag))
    for tag, key in MS_TO_S.items():
        if tag in meta and meta.get(tag) not in (None, ""):
            out[key] = round(float(meta.get(tag)) / 1000.0, 6)
    zooms = np.linalg.norm(conv.affine[:3, :3], axis=0)
    out.update(
        {
            "Plane": conv.info["plane"],
            "VoxelSizeMm": [round(float(z), 6) for z in zooms],
            "Shape": list(conv.data.shape),
            "Slices": conv.info["slices"],
            "Volumes": conv.info["volumes"],
            "SliceStepMm": conv.info["slice_step_mm"],
            "GantryTiltDeg": conv.info["gantry_tilt_deg"],
            "Rescale": [{"slope": a, "intercept": b} for a, b in conv.info["rescale"]],
            "Converter": backend,
            "FilesUsed": sorted({_redact(str(s.path.relative_to(folder)), meta) for s in used}),
            "FilesSkipped": [{"file": _redact(f, meta), "reason": r} for f, r in skipped],
        }
    )
    return out


def _redact(path: str, meta: Any) -> str:
    """Blank out path parts that carry a patient's name or ID (some exporters name files so)."""
    for tag in ("PatientName", "PatientID"):
        value = str(meta.get(tag, "") or "")
        for part in filter(lambda p: len(p) >= 3, re.split(r"[\^ ,]+", value)):
            path = re.sub(re.escape(part), "REDACTED", path, flags=re.I)
    return path


def sidecar_path(nifti: str | Path) -> Path:
    """``x.nii.gz`` -> ``x.json`` (as dcm2niix names its sidecars)."""
    nifti = Path(nifti)
    name = nifti.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return nifti.with_name(name + ".json")


def choose_series(
    folder: str | Path, description: str | None = None, plane: str | None = None
) -> tuple[Series, list[Series], list[tuple[str, str]]]:
    """Scan ``folder`` and choose its series: (chosen, every series, skipped files + reason)."""
    slices, skipped = scan_folder(folder)
    series_list = group_series(slices)
    return select_series(series_list, folder, description, plane), series_list, skipped


def read_series(
    folder: str | Path,
    description: str | None = None,
    plane: str | None = None,
    min_slices: int = 2,
    gantry_tilt: str = "resample",
) -> Conversion:
    """The volume :func:`dicom_to_nifti` would write for ``folder``, without writing it."""
    chosen, _, _ = choose_series(folder, description, plane)
    return load_series(chosen, folder, min_slices=min_slices, gantry_tilt=gantry_tilt)


def dicom_to_nifti(
    folder: str | Path,
    out_nii: str | Path,
    out_json: str | Path | None = None,
    description: str | None = None,
    plane: str | None = None,
    min_slices: int = 2,
    gantry_tilt: str = "resample",
    backend: str = "voxflow",
) -> Conversion:
    """Convert the chosen series under ``folder``; write NIfTI (+ JSON sidecar) atomically."""
    folder = Path(folder)
    if backend not in ("voxflow", "dcm2niix"):
        raise VoxflowError(f"dicom backend '{backend}' is not one of voxflow, dcm2niix")
    if gantry_tilt not in ("resample", "refuse"):
        raise VoxflowError(f"dicom gantry_tilt '{gantry_tilt}' is not one of resample, refuse")
    chosen, series_list, skipped = choose_series(folder, description, plane)
    skipped = skipped + [
        (str(s.path.relative_to(folder)), f"other series: {ser.label()}")
        for ser in series_list
        if ser is not chosen
        for s in ser.slices
    ]
    if backend == "dcm2niix":
        conv = _run_dcm2niix(chosen, folder, min_slices, gantry_tilt)
    else:
        conv = load_series(chosen, folder, min_slices=min_slices, gantry_tilt=gantry_tilt)
    info = sidecar(chosen, conv, folder, chosen.slices, skipped, backend)
    write_nifti(out_nii, conv.data, conv.affine)
    if out_json is not None:
        write_json(out_json, info)
    log.info(
        "wrote %s: shape %s, voxel %s mm, %s",
        out_nii,
        conv.data.shape,
        info["VoxelSizeMm"],
        conv.data.dtype,
    )
    return conv


def _run_dcm2niix(series: Series, folder: Path, min_slices: int, gantry_tilt: str) -> Conversion:
    """Convert the chosen series' files with the dcm2niix binary (PyPI package ``dcm2niix``)."""
    import shutil
    import subprocess
    import tempfile

    import nibabel as nib

    try:  # the PyPI package ships the binary
        import dcm2niix

        exe = dcm2niix.bin if Path(dcm2niix.bin).is_file() else shutil.which("dcm2niix")
    except ImportError:
        exe = shutil.which("dcm2niix")
    if exe is None:
        raise VoxflowError(
            "dicom backend dcm2niix: the dcm2niix binary is not on PATH "
            "(pip install dcm2niix), or use backend: voxflow"
        )
    n_pos = len({round(float(s.ipp @ s.normal), 2) for s in series.slices})
    if n_pos < max(min_slices, 2) and not series.slices[0].mosaic:
        raise input_error(
            folder,
            f"{series.label()}: {n_pos} slice position(s); at least {max(min_slices, 2)} needed",
        )
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in", Path(tmp) / "out"
        src.mkdir()
        dst.mkdir()
        for i, path in enumerate(sorted({s.path for s in series.slices})):
            os.symlink(path.resolve(), src / f"{i:06d}.dcm")
        proc = subprocess.run(
            [exe, "-z", "n", "-b", "n", "-f", "vol", "-o", str(dst), str(src)],
            capture_output=True,
            text=True,
        )
        outs = sorted(dst.glob("*.nii"))
        tilted = [p for p in outs if "_Tilt_" in p.name]
        if tilted and gantry_tilt == "refuse":
            raise input_error(
                folder,
                f"{series.label()}: gantry tilt (dcm2niix)",
                "Refusing rather than writing a resampled volume",
            )
        outs = tilted or outs  # dcm2niix writes both the raw and the tilt-corrected volume
        if proc.returncode != 0 or len(outs) != 1:
            tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
            raise input_error(
                folder,
                f"dcm2niix failed on {series.label()} ({len(outs)} outputs): {' | '.join(tail)}",
            )
        img = nib.load(outs[0])
        data, affine = np.asarray(img.dataobj), img.affine
    info = {
        "plane": series.plane,
        "slices": int(data.shape[2]),
        "volumes": int(data.shape[3]) if data.ndim == 4 else 1,
        "slice_step_mm": round(float(np.linalg.norm(affine[:3, 2])), 6),
        "gantry_tilt_deg": 0.0,
        "rescale": [],
    }
    return Conversion(_narrow(data), affine, info)
