"""The ``voxflow`` command line: standalone stages of the workflow (``voxflow <stage> --help``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from voxflow import __version__
from voxflow.errors import VoxflowError
from voxflow.logs import setup_logging

log = logging.getLogger("voxflow")


def _add_phantom(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "phantom",
        help="write one phantom subject",
        description="Write one phantom subject. 'brain': MNI152-based tissue maps "
        "(t1, gm, wm, csf, mask .nii.gz) with a seeded per-subject deformation.",
    )
    p.add_argument("kind", choices=["brain"], help="which phantom")
    p.add_argument("out_dir", type=Path, help="folder to write the subject's images into")
    p.add_argument("--subject", default="sub-001", help="subject ID (seeds the deformation)")
    p.add_argument("--seed", type=int, default=42, help="base seed (default 42)")
    p.add_argument("--voxel-mm", type=float, default=2.0, help="isotropic voxel size (mm)")
    p.set_defaults(func=_run_phantom)


def _run_phantom(args: argparse.Namespace) -> None:
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain, write_brain

    anat = make_brain(args.subject, args.seed, BrainPhantomConfig(voxel_mm=args.voxel_mm))
    for name, path in write_brain(anat, args.out_dir).items():
        log.info("wrote %s: %s", name, path)


def _add_dicom2nifti(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dicom2nifti",
        help="convert one DICOM series to NIfTI (+ JSON sidecar)",
        description="Convert the chosen DICOM series under IN_DIR to OUT.nii.gz and a JSON "
        "sidecar (acquisition facts, no patient identifiers) beside it.",
    )
    p.add_argument("in_dir", type=Path, help="folder with the DICOM files (searched recursively)")
    p.add_argument("out", type=Path, help="output .nii.gz (the sidecar gets .json)")
    p.add_argument("--description", help="regex on SeriesDescription to choose the series")
    p.add_argument("--plane", choices=["axial", "coronal", "sagittal"], help="required plane")
    p.add_argument("--min-slices", type=int, default=2, help="fewer slices is refused")
    p.add_argument("--gantry-tilt", choices=["resample", "refuse"], default="resample")
    p.add_argument("--backend", choices=["voxflow", "dcm2niix"], default="voxflow")
    p.add_argument("--no-json", action="store_true", help="do not write the sidecar")
    p.set_defaults(func=_run_dicom2nifti)


def _run_dicom2nifti(args: argparse.Namespace) -> None:
    from voxflow.io.dicom import dicom_to_nifti, sidecar_path

    dicom_to_nifti(
        args.in_dir,
        args.out,
        None if args.no_json else sidecar_path(args.out),
        description=args.description,
        plane=args.plane,
        min_slices=args.min_slices,
        gantry_tilt=args.gantry_tilt,
        backend=args.backend,
    )


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "check",
        help="check a real cohort before running the workflow on it",
        description="Check the cohort at COHORT_ROOT for a study: every subject has every "
        "configured channel/echo/series, image and label grids match, labels hold only the "
        "allowed values, no NaN/Inf or empty image, label tables name existing subjects, enough "
        "subjects for the split. Prints every problem (one line each, naming the file and the "
        "reason); exit status 1 when there is any. The workflow runs the same check at DAG build "
        "when <study>.cohort.root is set.",
    )
    p.add_argument("root", type=Path, metavar="COHORT_ROOT", help="the cohort's folder")
    p.add_argument("--study", required=True, choices=["ms", "qq", "gwr", "l3", "mgmt"])
    p.add_argument(
        "--configfile",
        type=Path,
        nargs="+",
        default=[],
        help="config files laid over the workflow's config/config.yaml, as with snakemake "
        "(layout, channels, echoes, labels, split)",
    )
    p.add_argument("--layout", help="ms only: the dataset layout (default: ms.cohort.layout)")
    p.add_argument(
        "--no-split",
        dest="split",
        action="store_false",
        help="the cohort is only evaluated (e.g. ms.real_check): skip the split-size check",
    )
    p.add_argument(
        "--workflow",
        type=Path,
        default=Path("."),
        help="the voxflow workflow folder holding config/ (default: the current folder)",
    )
    p.set_defaults(func=_run_check)


def load_config(workflow: Path, overrides: Sequence[Path] = ()) -> dict:
    """The workflow config as Snakemake builds it: config/config.yaml, then each override laid
    over it, validated (and defaults filled in) by config/schema.yaml."""
    import yaml
    from snakemake.utils import update_config

    from voxflow.config import validate

    base = workflow / "config" / "config.yaml"
    if not base.is_file():
        raise VoxflowError(
            f"{base}: not found. Run from the voxflow workflow folder or pass --workflow"
        )
    config: dict = {}
    for path in (base, *overrides):
        try:
            update_config(config, yaml.safe_load(Path(path).read_text()) or {})
        except (OSError, yaml.YAMLError) as err:
            raise VoxflowError(f"{path}: cannot read the config ({err})") from err
    validate(config, workflow / "config" / "schema.yaml")
    return config


def _run_check(args: argparse.Namespace) -> None:
    from voxflow.check import check_cohort

    config = load_config(args.workflow, args.configfile)
    report = check_cohort(args.study, args.root, config, layout=args.layout, split=args.split)
    for problem in report.problems:
        log.error("%s", problem)
    if not report.ok:
        raise VoxflowError(report.summary())
    log.info("%s", report.summary())


COMMANDS = [_add_phantom, _add_dicom2nifti, _add_check]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxflow",
        description="voxflow stages on the command line (the workflow runs them "
        "through Snakemake; these are for single files and debugging).",
    )
    parser.add_argument("--version", action="version", version=f"voxflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in COMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (1 with a one-line message on a user error)."""
    args = build_parser().parse_args(argv)
    setup_logging(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        args.func(args)
    except VoxflowError as err:
        log.error("%s", err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
