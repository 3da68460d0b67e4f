"""The ms demo cohort for the benchmarks: phantoms (isbi2015 layout) and their preprocessing,
written under a work folder once and reused by later runs."""

from __future__ import annotations

from pathlib import Path

from voxflow.io.layouts.ms import read_cohort
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.phantoms.ms import make_ms_subject, write_isbi2015
from voxflow.studies import ms


def demo_cohort(workdir: Path, n: int, seed: int, voxel_mm: float) -> list[Path]:
    """Preprocessed case folders of subjects 1..n (only missing ones are generated)."""
    raw, pre = workdir / "raw", workdir / "pre"
    for i in range(1, n + 1):
        if not (raw / "training" / f"training{i:02d}").is_dir():
            brain = make_brain(f"sub-{i:03d}", seed, BrainPhantomConfig(voxel_mm=voxel_mm))
            write_isbi2015(make_ms_subject(brain, seed), raw, i)
    cases = read_cohort("isbi2015", raw)[:n]
    for case in cases:
        if not (pre / case.case).is_dir():
            ms.preprocess_case(case, pre / case.case)
    return [pre / case.case for case in cases]
