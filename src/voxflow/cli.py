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


COMMANDS = [_add_phantom]


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
