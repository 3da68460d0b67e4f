"""Let ``snakemake --cores 8 --resources gpu=1 results/ms/dsc.tsv`` mean what it says.

Snakemake's ``--resources`` (like ``--config``, ``--set-resources``...) takes *every* following
word as a ``NAME=VALUE`` pair, so a target typed after it is read as a malformed resource and
Snakemake stops with ``ValueError: dictionary update sequence element #1 has length 1``. A word
without ``=`` can never be such a value, so :func:`move_targets` moves those words in front of
the options, where Snakemake reads them as targets, and says so in one line.

Nothing in Snakemake is changed: ``run.sh`` installs a one-line ``.pth`` startup hook into the
voxflow virtual environment (:func:`install`) that rewrites ``sys.argv`` of the ``snakemake``
command only, before Snakemake parses it. ``VOXFLOW_KEEP_ARGV=1`` turns it off;
``python -m voxflow.snakemake_argv install|uninstall`` adds or removes it in any environment.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

# Snakemake options whose values must all be NAME=VALUE (RULE=N, RULE:NAME=VALUE, KEY=VALUE)
KEY_VALUE_OPTIONS = frozenset(
    {
        "--resources",
        "--res",
        "--set-resources",
        "--default-resources",
        "--default-res",
        "--set-threads",
        "--set-scatter",
        "--set-resource-scopes",
        "--config",
        "-C",
        "--groups",
        "--group-components",
    }
)
PTH_NAME = "voxflow_snakemake_argv.pth"
PTH_LINE = (
    "import sys; "
    "sys.argv[:1] and sys.argv[0].endswith(('snakemake', 'snakemake/__main__.py')) "
    "and __import__('voxflow.snakemake_argv').snakemake_argv.hook()\n"
)


def move_targets(args: list[str]) -> tuple[list[str], list[str]]:
    """Return (args with misplaced targets moved first, the moved words).

    A word is misplaced when it follows a KEY_VALUE_OPTIONS option (after its NAME=VALUE
    words), does not start with ``-`` and has no ``=``: Snakemake would reject it as a value.
    Words after ``--`` are left alone.
    """
    kept: list[str] = []
    moved: list[str] = []
    in_key_values = False
    for i, word in enumerate(args):
        if word == "--":
            kept += args[i:]
            break
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            in_key_values = name in KEY_VALUE_OPTIONS and "=" not in word
            kept.append(word)
        elif in_key_values and "=" not in word:
            moved.append(word)
        else:
            kept.append(word)
    return moved + kept, moved


def hook() -> None:
    """Rewrite this process's ``sys.argv`` (the snakemake command) once, with a note."""
    if os.environ.get("VOXFLOW_KEEP_ARGV") or getattr(sys, "_voxflow_argv_checked", False):
        return
    sys._voxflow_argv_checked = True  # the .pth may be read twice (site-packages seen twice)
    args, moved = move_targets(sys.argv[1:])
    if moved:
        sys.argv[1:] = args
        print(
            f"voxflow: read {' '.join(moved)} as target(s), not as option values (Snakemake "
            "takes every word after --resources/--config as NAME=VALUE: write targets "
            "first); VOXFLOW_KEEP_ARGV=1 turns this off",
            file=sys.stderr,
        )


def pth_path() -> Path:
    """Where the startup hook lives: this environment's site-packages."""
    return Path(sysconfig.get_paths()["purelib"]) / PTH_NAME


def install() -> Path:
    """Write the ``.pth`` hook into this environment (idempotent)."""
    path = pth_path()
    if not path.exists() or path.read_text() != PTH_LINE:
        path.write_text(PTH_LINE)
    return path


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["install"]:
        print(f"voxflow: snakemake target-order hook in {install()}")
        return 0
    if args == ["uninstall"]:
        pth_path().unlink(missing_ok=True)
        return 0
    print("usage: python -m voxflow.snakemake_argv install|uninstall", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
