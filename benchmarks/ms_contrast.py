"""Tissue contrast of a real MS scan beside the MS phantom's, measured the same way.

    .venv/bin/python benchmarks/ms_contrast.py [--real ../shared/data/ms/open_ms_data/patient26]
        [--subjects 8] [--voxel-mm 2]

For each channel: median CSF, GM and lesion intensity relative to WM (and the lesions' 10th/90th
percentiles) from ``voxflow.evaluate.contrast.measure_contrast`` — a 3-class Gaussian mixture
of all channels' log intensities, lesions left out, posterior > 0.95 — on the real scan and on
phantom subjects (their median and range over subjects). The measured CSF is partial-volumed
in both (thin sulci), so compare like with like, not with the planted values. Only intensity
statistics of the real lesion mask are used. Prints a Markdown table (the README's), then the
resolution ceiling: the Dice of the real mask taken to each ``--ceiling`` voxel size (Gaussian
partial volume, linear resampling) and back, thresholded at 0.5, the best any model at that
grid can score on the real scan's own grid.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from voxflow.evaluate.contrast import measure_contrast
from voxflow.io.images import read_image
from voxflow.io.layouts.ms import read_open_ms_data
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.phantoms.ms import make_ms_subject

REPO = Path(__file__).resolve().parents[1]
ORDER = ("mprage", "flair", "t2", "pd")  # T1-weighted first: it names the mixture's classes
COLUMNS = ("csf", "gm", "lesion", "lesion_p10", "lesion_p90")


def real_table(folder: Path) -> dict[str, dict[str, float]]:
    case = next(c for c in read_open_ms_data(folder.parent) if c.case == folder.name)
    images = {ch: read_image(case.channels[ch]).data for ch in ORDER if ch in case.channels}
    return measure_contrast(images, read_image(case.mask).data > 0)


def phantom_tables(n: int, voxel_mm: float, seed: int) -> list[dict[str, dict[str, float]]]:
    out = []
    for i in range(1, n + 1):
        anat = make_brain(f"sub-{i:03d}", seed, BrainPhantomConfig(voxel_mm=voxel_mm))
        subject = make_ms_subject(anat, seed)
        images = {ch: subject.images[ch] for ch in ORDER}
        out.append(measure_contrast(images, subject.mask1 > 0, brain=anat.mask > 0))
    return out


def resolution_ceiling(mask: np.ndarray, voxel_mm: float) -> float:
    """Dice of a 1 mm mask after a round trip through a ``voxel_mm`` grid (threshold 0.5)."""
    from scipy import ndimage

    from voxflow.evaluate.metrics import dice

    small = ndimage.zoom(
        ndimage.gaussian_filter(mask.astype(float), voxel_mm / 2.355), 1 / voxel_mm, order=1
    )
    back = ndimage.zoom(small, np.array(mask.shape) / np.array(small.shape), order=1)
    return float(dice(back > 0.5, mask))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--real", type=Path, default=REPO.parent / "shared/data/ms/open_ms_data/patient26"
    )
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--voxel-mm", type=float, default=2.0)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--ceiling", type=float, nargs="*", default=[2.0, 3.0], metavar="MM")
    args = ap.parse_args()
    real = real_table(args.real)
    phantoms = phantom_tables(args.subjects, args.voxel_mm, args.seed)
    print(
        f"relative to WM = 1; real: {args.real.name}; phantom: median [min-max] of "
        f"{args.subjects} subjects at {args.voxel_mm} mm\n"
    )
    print("| channel | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for ch in ORDER:
        cells = []
        for col in COLUMNS:
            v = np.array([t[ch][col] for t in phantoms])
            ph = f"{np.median(v):.2f} [{v.min():.2f}-{v.max():.2f}]"
            cells.append(f"{real[ch][col]:.2f} / {ph}" if ch in real else f"– / {ph}")
        print(f"| {ch} | " + " | ".join(cells) + " |")
    case = next(c for c in read_open_ms_data(args.real.parent) if c.case == args.real.name)
    mask = read_image(case.mask).data > 0
    for mm in args.ceiling:
        print(f"\nresolution ceiling at {mm} mm: Dice {resolution_ceiling(mask, mm):.2f}", end="")
    print()


if __name__ == "__main__":
    main()
