"""Look for the identifiers of the DICOM inputs in every other file (the privacy tests).

:func:`dicom_identifiers` collects the values of :data:`voxflow.io.dicom.PHI_TAGS` from every
DICOM file under some folders; :func:`scan` reads every other file there (and each file's path)
and returns a :class:`Hit` for each identifier it finds. Compressed layers are opened (see
:func:`parts`): gzip (``.nii.gz``: header ``descrip``/``intent_name``/``aux_file`` and
extensions), zip (``.npz``, ``.pt``), bzip2/xz, PNG text chunks; numbers are left out (NIfTI
voxels, numeric arrays, tensor storages: they hold no text, and skipping them keeps a scan of a
workflow's outputs to seconds). Snakemake's base64-named metadata files have their names decoded.

What counts as a hit, chosen so that short values cannot collide with numbers and words in
tables and logs:

- a digit-only value (an MRN, an accession number, a date) needs 8 or more digits and matches
  a whole digit run (``6428550347`` in ``id=6428550347;``, not in ``0.96428550347``); a date
  also as ``YYYY-MM-DD`` (or with ``/`` or ``.``);
- a person name (``FAMILY^GIVEN``) matches by each component of 4 or more letters, case
  insensitively, anywhere (``okonkwo`` in ``Okonkwo_Adaeze.json``); a name without such a
  component matches as a whole;
- any other value of 4 or more characters (an ID with letters, an institution) matches as a
  whole, case insensitively, anywhere;
- each also as UTF-16 or UTF-32 text (NumPy stores its string arrays as UTF-32).

Values a de-identified export leaves (``ANONYMOUS``...), time tags, and values that the inputs'
own acquisition facts (:data:`voxflow.io.dicom.SIDECAR_TAGS`, copied into sidecars on purpose)
contain are not searched.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import gzip
import io
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voxflow.io.dicom import PHI_TAGS, SIDECAR_TAGS

NAME_TAGS = {"PatientName", "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName"}
NOT_SEARCHED = {"StudyTime"}  # a time of day alone identifies no one and collides with numbers
PLACEHOLDERS = {"anonymous", "anonymized", "anonymised", "unknown", "none", "n/a", "removed"}
MIN_DIGITS, MIN_CHARS = 8, 4
TAGS_READ = [*PHI_TAGS, *SIDECAR_TAGS]

_DIGIT_RUN = re.compile(rb"\d{%d,}" % MIN_DIGITS)
_DATE = re.compile(rb"(?<!\d)(\d{4})[-/.](\d\d)[-/.](\d\d)(?!\d)")
# text stored as UTF-16/UTF-32 (NumPy string arrays in .npz/.npy are UTF-32): digit runs
_WIDE_RUNS = {
    "utf-16-le": re.compile(rb"(?:\d\0){%d,}" % MIN_DIGITS),
    "utf-32-le": re.compile(rb"(?:\d\0\0\0){%d,}" % MIN_DIGITS),
}


@dataclass(frozen=True, order=True)
class Hit:
    """``value`` (of DICOM tag ``tag``) found in ``file`` (relative to the scanned root);
    ``where`` says in what: ``content``, ``path``, or a layer such as ``gzip``/``zip:name``."""

    file: str
    tag: str
    value: str
    where: str


@dataclass
class Identifiers:
    """What to look for: digit runs, case-folded substrings (each with its tag and value)."""

    digits: dict[bytes, tuple[str, str]]
    substrings: dict[bytes, tuple[str, str]]

    def __bool__(self) -> bool:
        return bool(self.digits or self.substrings)

    def __or__(self, other: Identifiers) -> Identifiers:
        return Identifiers({**other.digits, **self.digits}, {**other.substrings, **self.substrings})

    def add(self, tag: str, value: str) -> None:
        value = value.strip()
        if tag in NOT_SEARCHED or not value or value.lower() in PLACEHOLDERS:
            return
        if value.isdigit():
            if len(value) >= MIN_DIGITS:
                self.digits.setdefault(value.encode(), (tag, value))
            return
        parts = [value]
        if tag in NAME_TAGS:
            parts = [p for p in re.split(r"[\^= ,]+", value) if len(p) >= MIN_CHARS] or parts
        for part in parts:
            if len(part) >= MIN_CHARS:
                self.substrings.setdefault(part.lower().encode(), (tag, value))

    def _keys(self, data: bytes) -> tuple[set[bytes], set[bytes]]:
        """The digit and substring keys found in ``data`` (ASCII/UTF-8, UTF-16 or UTF-32)."""
        digits, substrings = set(), set()
        if self.digits:
            runs = _DIGIT_RUN.findall(data) + [b"".join(m) for m in _DATE.findall(data)]
            for codec, wide in _WIDE_RUNS.items():
                runs += [r.decode(codec).encode() for r in wide.findall(data)]
            digits = {r for r in runs if r in self.digits}
        if self.substrings:
            low = data.lower()
            for s in self.substrings:
                text = s.decode()
                if any(e in low for e in (s, text.encode("utf-16-le"), text.encode("utf-32-le"))):
                    substrings.add(s)
        return digits, substrings

    def find(self, data: bytes) -> set[tuple[str, str]]:
        """(tag, value) of every identifier in ``data``."""
        digits, substrings = self._keys(data)
        return {self.digits[k] for k in digits} | {self.substrings[k] for k in substrings}

    def allow(self, text: bytes) -> None:
        """Stop looking for what ``text`` (an input's non-identifying header text) contains."""
        digits, substrings = self._keys(text)
        for k in digits:
            del self.digits[k]
        for k in substrings:
            del self.substrings[k]


def is_dicom(path: Path) -> bool:
    """A ``.dcm``/``.ima`` file, or any file with the ``DICM`` marker after its preamble."""
    if path.suffix.lower() in (".dcm", ".ima"):
        return True
    with open(path, "rb") as f:
        head = f.read(132)
    return len(head) == 132 and head[128:] == b"DICM"


def files(roots: Iterable[Path | str]) -> Iterator[tuple[Path, Path]]:
    """(root, file) for every regular file under ``roots`` (a root may be a file)."""
    for root in map(Path, roots):
        if root.is_file():
            yield root.parent, root
        elif root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    yield root, path


def dicom_identifiers(roots: Iterable[Path | str]) -> Identifiers:
    """The PHI tag values of every readable DICOM file under ``roots``, less those that the
    files' sidecar tags carry too (copied on purpose: a ProtocolName 'DCM2NIIX regression
    test' is no leak of the PatientName 'Test^Regression')."""
    import pydicom

    ids = Identifiers({}, {})
    seen: set[tuple[str, str]] = set()
    facts: set[str] = set()
    for _, path in files(roots):
        if not is_dicom(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=TAGS_READ)
        except Exception:  # a stray or corrupt file: nothing to learn from it
            continue
        for tag in PHI_TAGS:
            value = str(ds.get(tag, "") or "")
            if value and (tag, value) not in seen:
                seen.add((tag, value))
                ids.add(tag, value)
        facts |= {str(ds.get(tag, "") or "") for tag in SIDECAR_TAGS}
    ids.allow("\n".join(sorted(facts)).encode())
    return ids


def _nifti_extent(head: bytes) -> int | None:
    """Bytes of header and extensions (``vox_offset``) if ``head`` starts a single-file
    NIfTI-1/2 image, else None."""
    for end in "<>":
        if len(head) >= 352 and struct.unpack(end + "i", head[:4])[0] == 348:
            if head[344:348] == b"n+1\0":
                return max(348, int(struct.unpack(end + "f", head[108:112])[0]))
        if len(head) >= 540 and struct.unpack(end + "i", head[:4])[0] == 540:
            if head[4:8] == b"n+2\0":
                return max(540, struct.unpack(end + "q", head[168:176])[0])
    return None


def _gzip_header(data: bytes) -> bytes:
    """The gzip member header, with the original file name and comment if stored."""
    flags, end = data[3], 10
    if flags & 4:  # FEXTRA
        end += 2 + int.from_bytes(data[10:12], "little")
    for bit in (8, 16):  # FNAME, FCOMMENT
        if flags & bit:
            end = data.index(b"\0", end) + 1
    return data[:end]


def _gunzip(data: bytes) -> bytes:
    """Decompressed ``data``; of a NIfTI image only its header and extensions."""
    with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
        head = f.read(540)
        extent = _nifti_extent(head)
        return head + (f.read() if extent is None else f.read(max(0, extent - len(head))))


def _npy_numeric(data: bytes) -> int | None:
    """Length of a ``.npy`` file's header if its array is numeric (no text), else None."""
    import ast

    if data[:6] != b"\x93NUMPY" or len(data) < 12:
        return None
    size, start = (
        (int.from_bytes(data[8:10], "little"), 10)
        if data[6] == 1
        else (int.from_bytes(data[8:12], "little"), 12)
    )
    try:
        descr = ast.literal_eval(data[start : start + size].decode("latin1"))["descr"]
        numeric = isinstance(descr, str) and np.dtype(descr).kind in "biufc"
    except (ValueError, SyntaxError, KeyError, TypeError):
        return None
    return start + size if numeric else None


def _png_parts(data: bytes) -> Iterator[tuple[str, bytes]]:
    """A PNG's chunks but the pixel data (IDAT), then its decompressed zTXt/iTXt text."""
    pos, plain, texts = 8, [data[:8]], []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunk = data[pos + 8 : pos + 8 + size]
        if kind != b"IDAT":
            plain.append(data[pos : pos + 12 + size])
        pos += 12 + size
        try:
            if kind == b"zTXt":
                texts.append(zlib.decompress(chunk.split(b"\0", 1)[1][1:]))
            elif kind == b"iTXt":
                rest = chunk.split(b"\0", 1)[1]
                if rest[:1] == b"\1":
                    texts.append(zlib.decompress(rest[2:].split(b"\0", 2)[2]))
        except (zlib.error, IndexError):
            continue
    yield "png", b"".join(plain)
    yield from (("png-text", t) for t in texts)


_TORCH_STORAGE = re.compile(r"(^|/)data/\d+$")


def parts(data: bytes, where: str = "content", depth: int = 0) -> Iterator[tuple[str, bytes]]:
    """The parts of a file that can hold text, as (where, bytes): the bytes themselves, or for
    gzip its header (the original file name) and the decompressed content, for zip (``.npz``,
    ``.pt``) the member names and each member, for bzip2/xz the decompressed content, for a PNG
    all but the pixel data plus the compressed text chunks. Numbers are left out: the voxels
    of a NIfTI image (its header and extensions are kept), numeric ``.npy`` arrays (their
    header is kept) and the raw tensor storages of a ``.pt`` checkpoint (its pickle is kept)."""

    def inner(label: str, payload: bytes) -> Iterator[tuple[str, bytes]]:
        yield from parts(payload, label if where == "content" else f"{where}/{label}", depth + 1)

    try:
        if depth < 4 and data[:2] == b"\x1f\x8b":
            yield where, _gzip_header(data)
            yield from inner("gzip", _gunzip(data))
        elif depth < 4 and data[:3] == b"BZh":
            yield from inner("bzip2", bz2.decompress(data))
        elif depth < 4 and data[:6] == b"\xfd7zXZ\x00":
            yield from inner("xz", lzma.decompress(data))
        elif depth < 4 and data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                names = z.namelist()
                yield where, "\n".join(names).encode()
                torch = any(n.endswith("data.pkl") for n in names)
                for name in names:
                    if not (torch and _TORCH_STORAGE.search(name)):
                        yield from inner(f"zip:{name}", z.read(name))
        elif data[:8] == b"\x89PNG\r\n\x1a\n":
            yield from _png_parts(data)
        elif (extent := _nifti_extent(data[:540])) is not None:
            yield where, data[:extent]
        elif (extent := _npy_numeric(data)) is not None:
            yield where, data[:extent]
        else:
            yield where, data
    except (OSError, EOFError, ValueError, lzma.LZMAError, zipfile.BadZipFile, zlib.error):
        yield where, data  # looked compressed but is not: scan the raw bytes


def _path_texts(rel: Path) -> list[bytes]:
    """A file's relative path, plus its decoded name for Snakemake's base64-named metadata."""
    texts = [str(rel).encode()]
    if rel.parent.name == "metadata":
        try:
            texts.append(base64.b64decode(rel.name, altchars=b"-_", validate=False))
        except (binascii.Error, ValueError):
            pass
    return texts


def scan(roots: Iterable[Path | str], ids: Identifiers, skip: Iterable[str] = ()) -> list[Hit]:
    """Every identifier of ``ids`` in the non-DICOM files under ``roots`` (their
    :func:`parts` and relative paths); ``skip`` names top-level folders of a root to
    leave out (e.g. a copy of the source code)."""
    if not ids:
        return []
    skip = set(skip)
    hits: set[Hit] = set()
    for root, path in files(roots):
        rel = path.relative_to(root)
        if rel.parts[0] in skip or is_dicom(path):
            continue
        for text in _path_texts(rel):
            hits |= {Hit(str(rel), t, v, "path") for t, v in ids.find(text.lower())}
        for where, data in parts(path.read_bytes()):
            hits |= {Hit(str(rel), t, v, where) for t, v in ids.find(data)}
    return sorted(hits)


def find_leaks(
    roots: Iterable[Path | str], sources: Iterable[Path | str] = (), skip: Iterable[str] = ()
) -> tuple[Identifiers, list[Hit]]:
    """Collect the identifiers of the DICOM files under ``roots`` and ``sources``, then
    :func:`scan` ``roots``; returns both (an empty :class:`Identifiers` means no DICOM)."""
    roots = [Path(r) for r in roots]
    ids = dicom_identifiers([*roots, *map(Path, sources)])
    return ids, scan(roots, ids, skip)


def workdir_leaks(workdir: Path | str) -> list[Hit]:
    """The hits in a workflow copy (:func:`workflow_copy.make_workdir`): every file but the
    copied code and config, against the identifiers of every DICOM file in it."""
    from workflow_copy import COPY

    return find_leaks([workdir], skip=COPY)[1]


def report(hits: list[Hit], limit: int = 20) -> str:
    """One line per hit (at most ``limit``), for a failure message."""
    lines = [f"{h.file} [{h.where}]: {h.tag} {h.value!r}" for h in hits[:limit]]
    more = len(hits) - limit
    return "\n".join(lines + ([f"... and {more} more"] if more > 0 else []))
