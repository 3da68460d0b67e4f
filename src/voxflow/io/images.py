"""Image I/O: NIfTI and NRRD/MetaImage in, NIfTI out, always with a RAS world affine.

Arrays are indexed (i, j, k[, t]) in the file's voxel order, and ``affine`` maps voxel indices
to RAS+ millimetres (NIfTI convention). NRRD/MetaImage (LPS, read through SimpleITK) are converted
to the same convention, so a volume read from any format can be compared in world space.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.errors import input_error
from voxflow.io.atomic import write_bytes_atomic
from voxflow.lazy import lazy_import

nib = lazy_import("nibabel")  # voxflow.lazy: not at Snakemake's DAG build

NIFTI_SUFFIXES = (".nii", ".nii.gz")
ITK_SUFFIXES = (".nrrd", ".nhdr", ".mha", ".mhd")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class Volume:
    """An image array with its voxel-to-RAS affine (mm) and where it came from."""

    data: np.ndarray
    affine: np.ndarray
    path: Path | None = None

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each array axis."""
        return tuple(float(s) for s in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def read_image(path: str | Path, dtype: np.dtype | type | None = np.float32) -> Volume:
    """Read a NIfTI (.nii/.nii.gz) or NRRD/MetaImage (.nrrd/.nhdr/.mha/.mhd) image.

    ``dtype=None`` keeps the stored type (use it for label maps). Raises a ``VoxflowError`` naming
    the file for a missing, unreadable or unsupported file.
    """
    path = Path(path)
    if not path.is_file():
        raise input_error(path, "image not found", "Check the cohort root/layout in the config")
    if not os.access(path, os.R_OK):  # nibabel reports it as an unknown file type
        raise input_error(path, "permission denied", "Make the file readable to this user")
    suffix = _suffix(path)
    try:
        if suffix in NIFTI_SUFFIXES:
            img = nib.load(str(path))
            data = np.asanyarray(img.dataobj)  # applies scl_slope/scl_inter
            affine = np.asarray(img.affine, dtype=np.float64)
        elif suffix in ITK_SUFFIXES:
            data, affine = _read_itk(path)
        else:
            raise input_error(
                path,
                f"unsupported image format '{suffix}'",
                f"Use one of {NIFTI_SUFFIXES + ITK_SUFFIXES}",
            )
    except PermissionError as err:
        raise input_error(path, "permission denied", "Make the file readable to this user") from err
    except (OSError, EOFError, ValueError, RuntimeError, nib.filebasedimages.ImageFileError) as err:
        raise input_error(path, f"cannot read image ({err})", "Is the file complete?") from err
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    return Volume(np.ascontiguousarray(data), affine, path)


def _read_itk(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import SimpleITK as sitk

    img = sitk.ReadImage(str(path))
    arr = sitk.GetArrayFromImage(img)  # (k, j, i[, c])
    nd = img.GetDimension()
    arr = np.transpose(arr, tuple(range(nd - 1, -1, -1)) + tuple(range(nd, arr.ndim)))
    direction = np.asarray(img.GetDirection(), dtype=np.float64).reshape(nd, nd)[:3, :3]
    spacing = np.asarray(img.GetSpacing(), dtype=np.float64)[:3]
    lps = np.eye(4)
    lps[:3, :3] = direction * spacing
    lps[:3, 3] = np.asarray(img.GetOrigin(), dtype=np.float64)[:3]
    return arr, LPS_TO_RAS @ lps


def nifti_bytes(
    data: np.ndarray,
    affine: np.ndarray,
    dtype: np.dtype | type | None = None,
    compress: bool = True,
) -> bytes:
    """Serialise a NIfTI-1 image; gzip with no timestamp or file name, so bytes are reproducible."""
    data = np.asarray(data if dtype is None else data.astype(dtype, copy=False))
    if data.dtype == np.float64:
        data = data.astype(np.float32)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    img = nib.Nifti1Image(data, np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    img.set_sform(affine, code=1)
    img.set_qform(affine, code=1)
    raw = img.to_bytes()
    return gzip_members(raw) if compress else raw


GZIP_CHUNK = 8 * 2**20


def gzip_members(raw: bytes, chunk: int | None = None) -> bytes:
    """gzip ``raw`` as fixed-size members compressed in parallel (like pigz, but multi-member).

    A gzip file may hold several members (RFC 1952); nibabel, zlib's ``gzread`` (ITK, FSL,
    AFNI) and ``gunzip`` read them as one stream. Fixed chunking keeps the bytes independent of
    the number of threads; no timestamp or file name goes into the headers.
    """
    chunk = chunk or GZIP_CHUNK
    if len(raw) <= chunk:
        return gzip.compress(raw, compresslevel=1, mtime=0)
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(raw)
    parts = [view[i : i + chunk] for i in range(0, len(raw), chunk)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        return b"".join(pool.map(lambda b: gzip.compress(b, compresslevel=1, mtime=0), parts))


def write_nifti(
    path: str | Path, data: np.ndarray, affine: np.ndarray, dtype: np.dtype | type | None = None
) -> Path:
    """Write a NIfTI image atomically (``.nii`` or ``.nii.gz``); float64 is stored as float32."""
    path = Path(path)
    suffix = _suffix(path)
    if suffix not in NIFTI_SUFFIXES:
        raise input_error(path, "output must end in .nii or .nii.gz")
    if not np.all(np.isfinite(affine)):
        raise input_error(path, "refusing to write an image whose affine is not finite")
    return write_bytes_atomic(path, nifti_bytes(data, affine, dtype, compress=suffix == ".nii.gz"))


def check_finite(vol: Volume, what: str = "image") -> Volume:
    """Raise a clear error if ``vol`` holds NaN or infinite values."""
    if np.issubdtype(vol.data.dtype, np.floating):
        bad = int(np.count_nonzero(~np.isfinite(vol.data)))
        if bad:
            raise input_error(
                vol.path or what,
                f"{bad} NaN/inf voxel(s) in the {what}",
                "Fix or mask the input (voxflow never guesses replacement values)",
            )
    return vol


def check_same_grid(a: Volume, b: Volume, atol_mm: float = 1e-3) -> None:
    """Raise a clear error unless ``a`` and ``b`` share spatial shape and affine."""
    if a.shape[:3] != b.shape[:3]:
        raise input_error(
            b.path or "image",
            f"shape {b.shape[:3]} differs from {a.shape[:3]} of {a.path}",
            "Images of one subject must be co-registered on one grid",
        )
    if not np.allclose(a.affine, b.affine, atol=atol_mm):
        raise input_error(
            b.path or "image",
            f"affine differs from that of {a.path} (by up to "
            f"{np.abs(a.affine - b.affine).max():.3g} mm)",
            "Images of one subject must be co-registered on one grid",
        )
