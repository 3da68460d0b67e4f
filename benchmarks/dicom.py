"""Benchmark: a 300-slice 512x512 int16 CT series -> .nii.gz, voxflow vs dcm2niix, in one run.

    .venv/bin/python benchmarks/dicom.py [--slices 300] [--repeat 2]

Writes the series once with pydicom (not timed), converts it with voxflow's converter and with
the dcm2niix binary (both writing gzip-compressed NIfTI), prints the best wall time of each and
their ratio, and checks that both give the identical voxel array and affine (world space).
Goal (issue 3): voxflow <= 1.5x dcm2niix.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "helpers"))
from dicom_factory import write_series  # noqa: E402

from voxflow.io.dicom import dicom_to_nifti  # noqa: E402


def ct_volume(n: int, size: int = 512) -> np.ndarray:
    """A body-like CT in HU: air, a fat/muscle ellipse, a bony ring, noise (compressible as CT)."""
    g = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size].astype(np.float32) - size / 2
    r = np.sqrt((x / 0.9) ** 2 + (y / 0.65) ** 2)
    body = np.where(r < 200, 40.0, -1000.0) + np.where((r > 60) & (r < 75), 700.0, 0.0)
    body = np.where((r > 170) & (r < 200), -90.0, body)
    vol = np.repeat(body[:, :, None], n, axis=2)
    vol += g.normal(0, 12, vol.shape).astype(np.float32)
    return np.round(vol)


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--slices", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    import dcm2niix

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vol = ct_volume(args.slices)
        t0 = time.perf_counter()
        write_series(tmp / "ct", vol, spacing=(0.7, 0.7, 1.0), intercept=-1024.0)
        print(
            f"series: {args.slices} x 512 x 512 int16, written in "
            f"{time.perf_counter() - t0:.1f} s (not timed below)"
        )
        out_vf = tmp / "voxflow.nii.gz"
        t_vf = best_of(args.repeat, lambda: dicom_to_nifti(tmp / "ct", out_vf, tmp / "vf.json"))
        out_dir = tmp / "d2n"
        out_dir.mkdir()

        def run_dcm2niix() -> None:
            for f in out_dir.iterdir():
                f.unlink()
            subprocess.run(
                [
                    dcm2niix.bin,
                    "-z",
                    "y",
                    "-b",
                    "n",
                    "-f",
                    "ct",
                    "-o",
                    str(out_dir),
                    str(tmp / "ct"),
                ],
                check=True,
                capture_output=True,
            )

        t_d2n = best_of(args.repeat, run_dcm2niix)
        a = nib.as_closest_canonical(nib.load(out_vf))
        b = nib.as_closest_canonical(nib.load(out_dir / "ct.nii.gz"))
        same = np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
        geo = float(np.abs(a.affine - b.affine).max())
        print(f"voxflow  -> .nii.gz: {t_vf:6.2f} s ({out_vf.stat().st_size / 1e6:.0f} MB)")
        print(
            f"dcm2niix -> .nii.gz: {t_d2n:6.2f} s "
            f"({(out_dir / 'ct.nii.gz').stat().st_size / 1e6:.0f} MB)"
        )
        print(f"ratio voxflow/dcm2niix: {t_vf / t_d2n:.2f} (goal <= 1.5)")
        print(f"identical voxels: {same}; max affine difference {geo:.2e} mm")


if __name__ == "__main__":
    main()
