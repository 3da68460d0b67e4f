"""The bad-input matrix (README "Bad input"): each kind through the real rules and the CLI.

For every kind: the workflow run and the CLI exit non-zero with one line naming the file and the
reason, the workflow leaves no output behind, and after the input is fixed the same run
completes. Kinds that can share a run do (the ms cohort's six break six different files at
once, and each must still get its line; the four DICOM folders are four conversions of one
``--keep-going`` run), which keeps the matrix at six workflow runs. Real cohorts are checked
at DAG build (``voxflow check``); DICOM folders of ``dicom.inputs`` are refused by the
conversion rule itself.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from workflow_copy import SNAKEMAKE, TINY_STUDY, make_workdir

from voxflow.io.dicom_write import write_series
from voxflow.io.images import read_image, write_nifti

VOXFLOW = str(Path(sys.executable).with_name("voxflow"))
NOBODY = 65534
pytestmark = pytest.mark.slow


# ---- valid inputs (written once, copied per kind) -----------------------------------------------
def _ct_series(folder: Path, key: str = "series", number: int = 2) -> None:
    data = np.full((16, 16, 10), -1000.0)
    data[4:12, 4:12, :] = 40.0
    write_series(
        folder,
        data,
        np.diag([4.0, 4.0, 5.0, 1.0]),
        "p1",
        series_key=key,
        prefix="IM" if key == "series" else key.upper(),
        series_number=number,
    )


def _ms_cohort(root: Path) -> None:
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
    from voxflow.phantoms.ms import make_ms_subject, write_isbi2015

    brain = make_brain("sub-001", 42, BrainPhantomConfig(voxel_mm=6.0))
    for i in (1, 2, 3):
        write_isbi2015(make_ms_subject(brain, i), root, i)


def _qq_cohort(root: Path, echoes: tuple[int, ...] = (8, 8, 8, 8)) -> None:
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
    from voxflow.phantoms.qq import QQPhantomConfig, make_qq_subject, write_qq_subject

    for i, n in enumerate(echoes, start=1):
        anat = make_brain(f"sub-00{i}", 1, BrainPhantomConfig(voxel_mm=6.0))
        write_qq_subject(make_qq_subject(anat, 1, QQPhantomConfig(n_echoes=n)), root, anat.subject)


def _l3_cohort(root: Path) -> None:
    for k, p in enumerate(["p1", "p2", "p3"]):
        data = np.full((12, 12, 16), -1000.0)
        data[3:9, 3:9, :] = 300.0 + k
        write_series(root / p, data, np.diag([8.0, 8.0, 10.0, 1.0]), p)
    (root / "l3_labels.csv").write_text(
        "patient,l3_first,l3_last,index_order\n"
        + "".join(f"{p},6,8,feet_to_head\n" for p in ("p1", "p2", "p3"))
    )


INPUTS: dict[str, Callable[[Path], None]] = {
    "dicom": _ct_series,
    "ms": _ms_cohort,
    "qq": _qq_cohort,
    "l3": _l3_cohort,
}


# ---- how each entry runs: config, workflow target, CLI ------------------------------------------
def _config(entry: str, root: Path) -> dict:
    if entry == "dicom":
        return {**TINY_STUDY, "studies": [], "dicom": {"inputs": {"scan": str(root)}}}
    if entry == "ms":
        cohort = {"layout": "isbi2015", "root": str(root)}
        return {
            **TINY_STUDY,
            "studies": ["ms"],
            "ms": {"cohort": cohort, "real_check": {"root": ""}},
        }
    if entry == "qq":
        qq = {"cohort": {"layout": "qq", "root": str(root)}, "split": {"test": 1, "val": 1}}
        return {**TINY_STUDY, "studies": ["qq"], "qq": qq}
    l3 = {"cohort": {"layout": "l3", "root": str(root)}, "folds": 2}
    return {**TINY_STUDY, "studies": ["l3"], "l3": l3}


TARGETS = {
    "dicom": "results/dicom/scan.nii.gz",
    "ms": "results/ms/preprocessed/training01_01/mask.nii.gz",
    "qq": "results/qq/cropped/sub-001/mask.nii.gz",
    "l3": "results/l3/ct/p1.nii.gz",
}


def _cli(entry: str, root: Path, workdir: Path) -> list[str]:
    if entry == "dicom":
        return [VOXFLOW, "dicom2nifti", str(root), str(workdir / "cli" / f"{root.name}.nii.gz")]
    return [VOXFLOW, "check", str(root), "--study", entry, "--workflow", str(workdir)]


# ---- the kinds --------------------------------------------------------------------------------
def _nifti_edit(path: Path, edit: Callable[[np.ndarray, np.ndarray], tuple]) -> None:
    vol = read_image(path, dtype=None)
    data, affine = edit(vol.data, vol.affine)
    write_nifti(path, data, affine)


def _ms(case: int, name: str) -> Path:
    sub = f"training/training0{case}"
    if name.startswith("mask"):
        return Path(f"{sub}/masks/training0{case}_01_{name}.nii")
    return Path(f"{sub}/preprocessed/training0{case}_01_{name}_pp.nii")


def _shift(data: np.ndarray, affine: np.ndarray) -> tuple:
    moved = affine.copy()
    moved[:3, 3] += moved[:3, 0]  # one voxel along i
    return data, moved


def _nan(data: np.ndarray, affine: np.ndarray) -> tuple:
    data = data.astype(np.float32)
    data[2, 2, 2] = np.nan
    return data, affine


@dataclass
class Kind:
    """One row of the matrix: which input, how it is broken, the file and reason expected."""

    name: str
    entry: str
    damage: Callable[[Path], Path]  # breaks the input under root; returns the file to name
    reason: str  # regex of the reason after "<file>: "
    as_nobody: bool = False
    config_typo: bool = False


def _truncate(root: Path) -> Path:
    one = sorted(root.glob("*.dcm"))[4]
    one.write_bytes(one.read_bytes()[:300])
    return one


def _stray(root: Path) -> Path:
    (root / "IM9999.dcm").write_text("exported by the PACS viewer\n")
    return root / "IM9999.dcm"


def _mixed(root: Path) -> Path:
    _ct_series(root, key="bone", number=3)  # a second reconstruction, as many slices
    return root


def _missing_slice(root: Path) -> Path:
    sorted(root.glob("*.dcm"))[5].unlink()
    return root


def _edit(case: int, name: str, edit) -> Callable[[Path], Path]:
    def damage(root: Path) -> Path:
        _nifti_edit(root / _ms(case, name), edit)
        return root / _ms(case, name)

    return damage


def _delete_t2(root: Path) -> Path:
    (root / _ms(2, "t2")).unlink()
    return root / _ms(2, "t2")


def _unreadable(root: Path) -> Path:
    (root / _ms(1, "flair")).chmod(0)
    return root / _ms(1, "flair")


def _echoes(root: Path) -> Path:
    shutil.rmtree(root / "sub-003")
    _qq_cohort(root / "redo", (8, 8, 7))
    shutil.move(root / "redo" / "sub-003", root / "sub-003")
    shutil.rmtree(root / "redo")
    return root / "sub-003" / "echo_times.json"


def _csv_rows(root: Path) -> Path:
    csv = root / "l3_labels.csv"
    csv.write_text(
        "patient,l3_first,l3_last,index_order\np1,6,8,feet_to_head\np9,6,8,feet_to_head\n"
    )
    return csv


KINDS = [
    Kind("truncated DICOM", "dicom", _truncate, r"corrupt DICOM file"),
    Kind(
        "non-image file in a series folder",
        "dicom",
        _stray,
        r"named as a DICOM image but is not a DICOM file",
    ),
    Kind("mixed series in one folder", "dicom", _mixed, r"mixed series: 2 series tie"),
    Kind("missing slice", "dicom", _missing_slice, r"series 2 'HEAD' .*: missing slice\(s\)"),
    Kind("NaN volume", "ms", _edit(1, "flair", _nan), r"1 NaN/inf voxel\(s\) in the flair image"),
    Kind(
        "label/image geometry mismatch",
        "ms",
        _edit(2, "mask1", _shift),
        r"affine differs from that of .*flair_pp.nii \(by up to 6 mm\)",
    ),
    Kind(
        "non-binary MS mask",
        "ms",
        _edit(3, "mask1", lambda d, a: (d * 2, a)),
        r"lesion mask \(binary 0/1\) holds value\(s\) \[2\]",
    ),
    Kind(
        "empty mask",
        "ms",
        _edit(1, "mask1", lambda d, a: (np.zeros_like(d), a)),
        r"empty lesion mask",
    ),
    Kind("wrong echo count", "qq", _echoes, r"subject sub-003 has 7 echoes but qq.n_echoes is 8"),
    Kind("missing channel file", "ms", _delete_t2, r"missing t2 image"),
    Kind(
        "missing/unknown row in a label CSV",
        "l3",
        _csv_rows,
        r"(unknown patient 'p9' \(no such folder\)|no row for patient\(s\) \['p2', 'p3'\])",
    ),
    Kind(
        "config typo",
        "ms",
        lambda root: Path("config"),
        r"ms.pach_size: unknown key \(did you mean 'patch_size'\?\)",
        config_typo=True,
    ),
    Kind(
        "unreadable (permission-denied) input",
        "ms",
        _unreadable,
        r"permission denied",
        as_nobody=True,
    ),
    Kind(
        "2D image where 3D is needed",
        "ms",
        _edit(3, "t2", lambda d, a: (d[:, :, 4], a)),
        r"t2 image is 2D",
    ),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, Path]:
    """Valid inputs of each entry."""
    base = tmp_path_factory.mktemp("valid")
    out = {}
    for entry, write in INPUTS.items():
        write(base / entry)
        out[entry] = base / entry
    return out


def _run(cmd: list[str], cwd: Path, as_nobody: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if as_nobody and os.geteuid() == 0:  # root reads any file: run as an unprivileged user
        cmd = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *cmd]
        env |= {"HOME": str(cwd), "XDG_CACHE_HOME": str(cwd / ".cache")}
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)


def _group(kind: Kind) -> str:
    """Kinds that can share one broken input and one run (each still gets its own line)."""
    if kind.as_nobody or kind.config_typo:
        return kind.name
    return kind.entry


GROUPS: dict[str, list[Kind]] = {}
for _kind in KINDS:
    GROUPS.setdefault(_group(_kind), []).append(_kind)


@pytest.mark.parametrize("group", list(GROUPS))
def test_bad_input_is_one_line_nothing_is_left_and_a_fixed_rerun_completes(group, pristine):
    """The kinds of ``group`` at once: one line each, nothing left, a fixed rerun completes.
    DICOM kinds are separate folders (one stand-alone conversion each, ``--keep-going``)."""
    kinds = GROUPS[group]
    entry = kinds[0].entry
    as_nobody = any(k.as_nobody for k in kinds)
    # a world-readable folder outside pytest's private one, so that `nobody` can use it
    base = Path(tempfile.mkdtemp(prefix="voxflow-bad-"))
    try:
        base.chmod(0o755)
        roots = [base / f"input{i}" for i in range(len(kinds) if entry == "dicom" else 1)]
        for root in roots:
            shutil.copytree(pristine[entry], root)
        config = _config(entry, roots[0])
        targets = [TARGETS[entry]]
        if entry == "dicom":
            config["dicom"]["inputs"] = {f"scan{i}": str(r) for i, r in enumerate(roots)}
            targets = [f"results/dicom/scan{i}.nii.gz" for i in range(len(roots))]
        workdir = make_workdir(base / "wf", config)
        if as_nobody and os.geteuid() == 0:
            subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(workdir)], check=True)
        lines = {}
        for i, kind in enumerate(kinds):
            named = kind.damage(roots[i if entry == "dicom" else 0])
            lines[kind.name] = re.compile(rf"^.*{re.escape(str(named))}\S*: {kind.reason}.*$", re.M)
        snakemake = [SNAKEMAKE, "--cores", "2", "--keep-going", *targets]
        typo = base / "typo.yaml"
        if any(k.config_typo for k in kinds):
            typo.write_text(yaml.safe_dump({"ms": {"pach_size": 16}}))
            snakemake += ["--configfile", str(typo)]
            lines = {k.name: re.compile(rf"^.*config: {k.reason}$", re.M) for k in kinds}

        proc = _run(snakemake, workdir, as_nobody)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0, out
        for name, line in lines.items():
            assert line.search(out), f"{name}: no line '{line.pattern}' in:\n{out}"
        left = [p for p in (workdir / "results").rglob("*") if p.is_file()]
        assert not left, f"partial output left behind: {left}"

        for i, kind in enumerate(kinds):  # the CLI, once per input
            if entry == "dicom" or i == 0:
                cli = _cli(entry, roots[i if entry == "dicom" else 0], workdir)
                if kind.config_typo:
                    cli += ["--configfile", str(typo)]
                proc = _run(cli, workdir, as_nobody)
                assert proc.returncode == 1, proc.stdout + proc.stderr
            assert lines[kind.name].search(proc.stderr), f"{kind.name}:\n{proc.stderr}"
        assert not (workdir / "cli").exists()

        # fix the input (or the config) and rerun: it completes
        if "--configfile" in snakemake:
            snakemake = snakemake[: snakemake.index("--configfile")]
        for root in roots:
            shutil.rmtree(root)
            shutil.copytree(pristine[entry], root)
        # (as the owner: this machine's Python may live where `nobody` cannot run jobs from)
        proc = _run(snakemake, workdir, as_nobody=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert all((workdir / t).is_file() for t in targets)
    finally:
        shutil.rmtree(base, ignore_errors=True)
