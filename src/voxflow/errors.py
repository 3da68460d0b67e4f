"""User-facing errors: each names the file (or config key) and the reason, and says what to do."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class VoxflowError(Exception):
    """A problem with the user's input or configuration (not a bug in voxflow)."""


def input_error(path: str | Path, reason: str, hint: str | None = None) -> VoxflowError:
    """Build a one-line error of the form ``<path>: <reason>. <hint>``."""
    msg = f"{path}: {reason}"
    if hint:
        msg += f". {hint}"
    return VoxflowError(msg)


def raise_or_collect(err: VoxflowError, problems: list[str] | None) -> None:
    """Raise ``err``, or append its message to ``problems`` when collecting every problem of a
    cohort at once (``voxflow check``) instead of stopping at the first."""
    if problems is None:
        raise err
    problems.append(str(err))


@contextmanager
def collecting(problems: list[str] | None, where: str | Path | None = None) -> Iterator[None]:
    """A ``VoxflowError`` raised in the block propagates, or, with ``problems``, is appended
    there (prefixed with ``where`` when given) and the rest of the block is skipped."""
    try:
        yield
    except VoxflowError as err:
        if problems is None:
            raise
        problems.append(f"{where}: {err}" if where else str(err))
