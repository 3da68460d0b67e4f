"""Atomic file writes: write to a temporary sibling, then rename over the target."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# mkstemp creates 0600 files; a finished output gets the mode open() would give it (0644 under
# the usual umask 022), so collaborators and other users of a shared cluster can read it
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary name keeps the full suffix (``.nii.gz``, ``.tsv``) so writers that dispatch on
    the extension behave. A killed or failing writer (a full disk: ENOSPC) leaves no file at
    ``path`` (an existing one is left as it was) and no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffix)] if suffix else path.name
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            tmp_path.chmod(FILE_MODE)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; a failed write (a full disk: ENOSPC) raises an
    ``OSError`` with its errno that names ``path`` rather than the deleted temporary file."""
    with atomic_path(path) as tmp:
        try:
            tmp.write_bytes(data)
        except OSError as err:
            raise OSError(err.errno, err.strerror, str(path)) from err
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """``obj`` as JSON (plus a final newline) at ``path``, atomically."""
    import json

    return write_text_atomic(path, json.dumps(obj, indent=indent) + "\n")


def write_npz(path: str | Path, arrays: Mapping[str, Any]) -> Path:
    """An ``.npz`` that :func:`numpy.load` reads, written atomically with fixed member
    timestamps, so equal arrays give byte-identical files (hashes of them key caches)."""
    import io
    import zipfile

    import numpy as np

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as z:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.save(buf, np.asarray(value), allow_pickle=False)
            z.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), buf.getvalue()
            )
    return path


def read_npz(path: str | Path, hint: str) -> dict[str, Any]:
    """The arrays of an ``.npz`` (as :func:`write_npz` writes); a missing file is an error
    naming it, with ``hint`` saying which rule makes it."""
    import numpy as np

    from voxflow.errors import input_error

    path = Path(path)
    if not path.is_file():
        raise input_error(path, "preprocessed arrays not found", hint)
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
