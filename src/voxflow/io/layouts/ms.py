"""MS lesion datasets: ISBI 2015, MICCAI 2008 and open_ms_data (Lesjak et al. 2017).

Every reader returns :class:`MSCase` records with the voxflow channel names ``flair``,
``mprage`` (any T1-weighted image), ``pd`` and ``t2``; a channel a layout lacks is absent from
``channels`` (MICCAI 2008 and open_ms_data have no PD) and the study skips it with a log line.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from voxflow.errors import input_error

log = logging.getLogger(__name__)
CHANNELS = ("flair", "mprage", "pd", "t2")


@dataclass(frozen=True)
class MSCase:
    """One scan: channel -> image path, the lesion mask (first rater) and an optional second."""

    case: str
    channels: dict[str, Path]
    mask: Path
    mask2: Path | None = None


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise input_error(path, f"missing {what}", "Is the dataset complete?")
    return path


def _root(root: str | Path, layout: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise input_error(root, f"{layout} dataset root not found", "Set ms.cohort.root")
    return root


def _case_folders(root: Path, pattern: str) -> list[Path]:
    """Sub-folders of ``root`` whose whole name matches ``pattern``, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(pattern, p.name))


def read_isbi2015(root: str | Path) -> list[MSCase]:
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
        channels = {
            ch: _need(pre / f"{sid}_{tp}_{ch}_pp.nii{gz}", f"{ch} image") for ch in CHANNELS
        }
        mask2 = masks / f"{sid}_{tp}_mask2.nii{gz}"
        cases.append(
            MSCase(
                f"{sid}_{tp}",
                channels,
                _need(masks / f"{sid}_{tp}_mask1.nii{gz}", "mask1"),
                mask2 if mask2.is_file() else None,
            )
        )
    return cases


def read_miccai2008(root: str | Path) -> list[MSCase]:
    """``{CHB,UNC}_train_CaseNN/{case}_{FLAIR,T1,T2,lesion}.nhdr`` (+ .raw); no PD channel."""
    root = _root(root, "miccai2008")
    names = {"flair": "FLAIR", "mprage": "T1", "t2": "T2"}
    cases = []
    for folder in _case_folders(root, r"(CHB|UNC)_train_Case\d+"):
        case = folder.name
        channels = {ch: _need(folder / f"{case}_{n}.nhdr", f"{n} image") for ch, n in names.items()}
        byhand = folder / f"{case}_lesion_byCHB.nhdr"
        cases.append(
            MSCase(
                case,
                channels,
                _need(folder / f"{case}_lesion.nhdr", "lesion mask"),
                byhand if byhand.is_file() else None,
            )
        )
    return cases


def read_open_ms_data(root: str | Path) -> list[MSCase]:
    """``patientNN/{FLAIR,T1,T2}_*.nii.gz`` + ``GOLD_STANDARD_*.nii.gz`` (MNI, 1 mm); no PD."""
    root = _root(root, "open_ms_data")
    prefixes = {"flair": "FLAIR_", "mprage": "T1_", "t2": "T2_"}
    cases = []
    for folder in _case_folders(root, r"patient\d+"):
        channels = {}
        for ch, prefix in prefixes.items():
            found = sorted(folder.glob(f"{prefix}*.nii.gz"))
            if len(found) != 1:
                raise input_error(folder, f"expected one {prefix}*.nii.gz, found {len(found)}")
            channels[ch] = found[0]
        gold = sorted(folder.glob("GOLD_STANDARD*.nii.gz"))
        if len(gold) != 1:
            raise input_error(folder, f"expected one GOLD_STANDARD*.nii.gz, found {len(gold)}")
        cases.append(MSCase(folder.name, channels, gold[0]))
    return cases


READERS: dict[str, Callable[[str | Path], list[MSCase]]] = {
    "isbi2015": read_isbi2015,
    "miccai2008": read_miccai2008,
    "open_ms_data": read_open_ms_data,
}


def read_cohort(layout: str, root: str | Path) -> list[MSCase]:
    """All cases of an MS dataset; refuses an unknown layout or an empty folder."""
    if layout not in READERS:
        raise input_error(root, f"unknown MS layout '{layout}'", f"Use one of {sorted(READERS)}")
    cases = READERS[layout](root)
    if not cases:
        raise input_error(root, f"no {layout} cases found", "Check ms.cohort.root and layout")
    missing = sorted(set(CHANNELS) - set(cases[0].channels))
    if missing:
        log.info("%s layout has no %s channel(s); they are skipped", layout, missing)
    return cases
