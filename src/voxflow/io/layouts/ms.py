"""MS lesion datasets: ISBI 2015, MICCAI 2008 and open_ms_data (Lesjak et al. 2017).

Every reader returns :class:`MSCase` records with the voxflow channel names ``flair``,
``mprage`` (any T1-weighted image), ``pd`` and ``t2``; a channel a layout lacks is absent from
``channels`` (MICCAI 2008 and open_ms_data have no PD) and the study skips it with a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from voxflow.errors import VoxflowError, input_error, raise_or_collect

log = logging.getLogger(__name__)
CHANNELS = ("flair", "mprage", "pd", "t2")


@dataclass(frozen=True)
class MSCase:
    """One scan: channel -> image path, the lesion mask (first rater) and an optional second."""

    case: str
    channels: dict[str, Path]
    mask: Path
    mask2: Path | None = None


def missing_files(case: MSCase, channels: Iterable[str] = CHANNELS) -> list[str]:
    """One error message per missing image of ``case`` (its ``channels`` and first mask)."""
    wanted = [(case.channels[c], f"{c} image") for c in channels if c in case.channels]
    return [
        f"{path}: missing {what}. Is the dataset complete?"
        for path, what in [*wanted, (case.mask, "lesion mask")]
        if not path.is_file()
    ]


def _root(root: str | Path, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise input_error(root, f"{layout} dataset root not found", "Set ms.cohort.root")
    return root


def _case_folders(root: Path, pattern: str) -> list[Path]:
    """Sub-folders of ``root`` whose whole name matches ``pattern``, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(pattern, p.name))


def read_isbi2015(root: str | Path, problems: list[str] | None = None) -> list[MSCase]:
    """``training/trainingNN/preprocessed/trainingNN_TT_{flair,mprage,pd,t2}_pp.nii`` + masks."""
    root = _root(root, "isbi2015")
    cases = []
    pattern = re.compile(r"(training\d+)_(\d+)_flair_pp\.nii(\.gz)?$")
    for flair in sorted(root.glob("training/training*/preprocessed/*_flair_pp.nii*")):
        m = pattern.search(flair.name)
        if not m:
            continue
        sid, tp, gz = m.group(1), m.group(2), m.group(3) or ""
        pre, masks = flair.parent, flair.parent.parent / "masks"
        channels = {ch: pre / f"{sid}_{tp}_{ch}_pp.nii{gz}" for ch in CHANNELS}
        mask2 = masks / f"{sid}_{tp}_mask2.nii{gz}"
        cases.append(
            MSCase(
                f"{sid}_{tp}",
                channels,
                masks / f"{sid}_{tp}_mask1.nii{gz}",
                mask2 if mask2.is_file() else None,
            )
        )
    return cases


def read_miccai2008(root: str | Path, problems: list[str] | None = None) -> list[MSCase]:
    """``{CHB,UNC}_train_CaseNN/{case}_{FLAIR,T1,T2,lesion}.nhdr`` (+ .raw); no PD channel."""
    root = _root(root, "miccai2008")
    names = {"flair": "FLAIR", "mprage": "T1", "t2": "T2"}
    cases = []
    for folder in _case_folders(root, r"(CHB|UNC)_train_Case\d+"):
        case = folder.name
        channels = {ch: folder / f"{case}_{n}.nhdr" for ch, n in names.items()}
        byhand = folder / f"{case}_lesion_byCHB.nhdr"
        cases.append(
            MSCase(
                case,
                channels,
                folder / f"{case}_lesion.nhdr",
                byhand if byhand.is_file() else None,
            )
        )
    return cases


def read_open_ms_data(root: str | Path, problems: list[str] | None = None) -> list[MSCase]:
    """``patientNN/{FLAIR,T1,T2}_*.nii.gz`` + ``GOLD_STANDARD_*.nii.gz`` (MNI, 1 mm); no PD."""
    root = _root(root, "open_ms_data")
    prefixes = {"flair": "FLAIR_", "mprage": "T1_", "t2": "T2_"}
    cases = []
    for folder in _case_folders(root, r"patient\d+"):
        channels = {ch: _one(folder, f"{p}*.nii.gz", problems) for ch, p in prefixes.items()}
        gold = _one(folder, "GOLD_STANDARD*.nii.gz", problems)
        cases.append(MSCase(folder.name, channels, gold))
    return cases


def _one(folder: Path, pattern: str, problems: list[str] | None) -> Path:
    """The one file matching ``pattern``; when none, the pattern itself (reported as missing)."""
    found = sorted(folder.glob(pattern))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise_or_collect(
            input_error(folder, f"{len(found)} files match {pattern} ({names})", "Keep one"),
            problems,
        )
    return found[0] if found else folder / pattern


READERS: dict[str, Callable[[str | Path, list[str] | None], list[MSCase]]] = {
    "isbi2015": read_isbi2015,
    "miccai2008": read_miccai2008,
    "open_ms_data": read_open_ms_data,
}


def read_cohort(layout: str, root: str | Path, problems: list[str] | None = None) -> list[MSCase]:
    """All cases of an MS dataset; refuses an unknown layout, an empty folder or a missing
    image. With ``problems`` (``voxflow check``), a case's missing or ambiguous files are
    collected there instead and the case is kept."""
    if layout not in READERS:
        raise input_error(root, f"unknown MS layout '{layout}'", f"Use one of {sorted(READERS)}")
    cases = READERS[layout](root, problems)
    if not cases:
        raise input_error(root, f"no {layout} cases found", "Check ms.cohort.root and layout")
    if problems is None:
        for case in cases:
            for message in missing_files(case):
                raise VoxflowError(message)
    missing = sorted(set(CHANNELS) - set(cases[0].channels))
    if missing:
        log.info("%s layout has no %s channel(s); they are skipped", layout, missing)
    return cases
