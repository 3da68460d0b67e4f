"""Logging helpers: every workflow script logs into its rule's ``log:`` file."""

from __future__ import annotations

import errno
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from voxflow.errors import VoxflowError

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"


def setup_logging(log_file: str | Path | None = None, level: int = logging.INFO) -> logging.Logger:
    """Send voxflow's log records to stderr and, if given, to ``log_file`` (overwritten)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, mode="w", encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    return logging.getLogger("voxflow")


# errors of the machine (full disk, read-only mount, permissions, quota), not of voxflow
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


@contextmanager
def rule_logging(log_file: str | Path | None) -> Iterator[logging.Logger]:
    """Context for a Snakemake script: log to the rule's log file; user errors exit 1 in one line.

    A :class:`VoxflowError` is logged as a single ``ERROR`` line (no traceback) and the process
    exits with status 1, so Snakemake marks the job failed and removes its outputs; so is an
    ``OSError`` of the machine (full disk, read-only, permission). Any other exception is logged
    with its traceback and re-raised.
    """
    log = setup_logging(log_file)
    try:
        yield log
    except VoxflowError as err:
        log.error("%s", err)
        logging.shutdown()
        sys.exit(1)
    except Exception as err:
        if isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS:
            # the machine, not voxflow: a full disk, a read-only mount, a permission, a quota
            log.error(
                "%s: %s. Free space or fix permissions, then rerun", err.filename, err.strerror
            )
            logging.shutdown()
            sys.exit(1)
        log.exception("unexpected error (a voxflow bug: please report it with this log)")
        logging.shutdown()
        raise
