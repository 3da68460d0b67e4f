"""No identifier of a DICOM input reaches any output (issue 19).

The phantom DICOMs carry hospital-style identifiers (:func:`voxflow.io.dicom_write.identity`:
name, MRN, birth date, accession number, institution, referring physician, study date), none
of them the pseudonymous folder ID that names files and rows everywhere. The scanner
(:mod:`privacy`) collects them from the DICOM files and looks for them in every other file:
NIfTI headers and extensions, JSON sidecars, tables, logs, figures, checkpoints, Snakemake's
metadata. A negative control shows that it does fail on planted identifiers.

Where it runs: here on the DICOM stage and the ``voxflow dicom2nifti`` CLI (with its logs); in
``tests/workflow/conftest.py`` after every passing test that used ``workdir`` (the slow DAG
tests of mgmt, l3 and gwr: every output of the real workflow, at no extra run); in
``tests/io/test_dicom.py`` after every test (synthetic and real DICOM data).
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from privacy import find_leaks, report, scan, workdir_leaks

from voxflow.io.dicom import dicom_to_nifti
from voxflow.io.dicom_write import identity, write_series

SEED = 42
VOXFLOW = str(Path(sys.executable).with_name("voxflow"))


def _phantom_series(root: Path) -> tuple[Path, Path, dict[str, str]]:
    """One torso-CT phantom patient as the l3 phantom writes it (axial series + scout) under
    ``root/raw/p001``, and the same files renamed after the patient, as some exporters name
    them, under ``root/named``. Returns both folders and the patient's identifiers."""
    from voxflow.phantoms.l3 import L3PhantomConfig, make_patient, write_patient

    cfg = L3PhantomConfig(matrix=32, pixel_mm=12.0, scout_fraction=1.0)
    patient = make_patient("p001", SEED, cfg)
    write_patient(patient, root / "raw", root / "truth", SEED)
    ids = identity("p001", SEED)
    raw, named = root / "raw" / "p001", root / "named"
    named.mkdir()
    family, given = ids["PatientName"].split("^")
    for path in sorted(raw.glob("*.dcm")):
        shutil.copy(path, named / f"{family}_{given}_{ids['PatientID']}_{path.name}")
    return raw, named, ids


def test_negative_control_planted_identifiers_are_found(tmp_path):
    raw, _, ids = _phantom_series(tmp_path / "in")
    name, mrn, birth = ids["PatientName"], ids["PatientID"], ids["PatientBirthDate"]
    family, given = name.split("^")
    out = tmp_path / "out"
    (out / ".snakemake" / "metadata").mkdir(parents=True)
    img = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    img.header["descrip"] = name.encode()
    img.header["intent_name"] = mrn.encode()
    img.header["aux_file"] = f"{birth[:4]}-{birth[4:6]}-{birth[6:]}".encode()
    img.header.extensions.append(nib.nifti1.Nifti1Extension(6, ids["AccessionNumber"].encode()))
    nib.save(img, out / "leak.nii.gz")
    (out / "leak.json").write_text(json.dumps({"Patient": f"{family.title()}, {given.title()}"}))
    np.savez_compressed(out / "leak.npz", notes=np.array([f"from {ids['InstitutionName']}"]))
    (out / f"{given.lower()}.txt").write_text("nothing inside\n")
    meta = base64.urlsafe_b64encode(f"results/{family}/x.tsv".encode()).decode()
    (out / ".snakemake" / "metadata" / meta).write_text("{}")
    # near misses that must not count: the MRN and dates inside longer numbers, short words
    (out / "clean.tsv").write_text(
        f"a\tb\tc\n0.{mrn}7\t{mrn}1\t{birth}{birth}\n{given[:3]}\t{ids['StudyDate'][:6]}\tp001\n"
    )
    found, hits = find_leaks([out], sources=[raw])
    assert found, "the DICOM identifiers were collected"
    got = {(h.file, h.tag, h.where) for h in hits}
    expected = {
        ("leak.nii.gz", "PatientName", "gzip"),  # descrip
        ("leak.nii.gz", "PatientID", "gzip"),  # intent_name
        ("leak.nii.gz", "PatientBirthDate", "gzip"),  # aux_file, ISO form
        ("leak.nii.gz", "AccessionNumber", "gzip"),  # a header extension
        ("leak.json", "PatientName", "content"),  # components, other case and order
        ("leak.npz", "InstitutionName", "zip:notes.npy"),  # inside a compressed member
        (f"{given.lower()}.txt", "PatientName", "path"),
        (f".snakemake/metadata/{meta}", "PatientName", "path"),  # a base64-named file
    }
    assert got == expected, report(hits)
    # without the DICOM files there is nothing to look for, and nothing is found
    assert scan([out], find_leaks([tmp_path / "empty"])[0]) == []


def test_dicom_stage_and_cli_outputs_carry_no_identifiers(tmp_path):
    raw, named, ids = _phantom_series(tmp_path / "in")
    out = tmp_path / "out"
    dicom_to_nifti(raw, out / "api/ct.nii.gz", out / "api/ct.json")
    dicom_to_nifti(named, out / "dcm2niix/ct.nii.gz", out / "dcm2niix/ct.json", backend="dcm2niix")
    runs = {  # a debug-logged conversion, and a refusal (no sagittal series)
        "cli": ["-v", "dicom2nifti", str(named), str(out / "cli/ct.nii.gz")],
        "refused": ["dicom2nifti", str(named), str(out / "refused/x.nii.gz"), "--plane=sagittal"],
    }
    for name, cmd in runs.items():
        (out / name).mkdir(parents=True, exist_ok=True)
        with open(out / name / "dicom2nifti.log", "w") as log:
            rc = subprocess.run([VOXFLOW, *cmd], stdout=log, stderr=subprocess.STDOUT).returncode
        assert rc == (0 if name == "cli" else 1), (out / name / "dicom2nifti.log").read_text()
    assert "sagittal" in (out / "refused/dicom2nifti.log").read_text()
    sidecar = json.loads((out / "cli/ct.json").read_text())
    assert sidecar["FilesUsed"][0].startswith("REDACTED_REDACTED_REDACTED_IM")
    found, hits = find_leaks([out], sources=[tmp_path / "in"])
    # every identifier was looked for: name components, MRN, dates, accession, institution
    family, given = ids["PatientName"].split("^")
    assert {family.lower().encode(), given.lower().encode(), b"pemberton"} <= set(found.substrings)
    assert ids["InstitutionName"].lower().encode() in found.substrings
    digits = {"PatientID", "PatientBirthDate", "StudyDate", "AccessionNumber"}
    assert {ids[k].encode() for k in digits} <= set(found.digits)
    assert hits == [], report(hits)


def test_mixed_patients_refusal_names_no_patient(tmp_path):
    _, named, _ = _phantom_series(tmp_path / "in")
    other = write_series(tmp_path / "in/other", np.zeros((4, 4, 3)), np.eye(4), "p002", seed=SEED)
    family, given = identity("p002", SEED)["PatientName"].split("^")
    shutil.copy(other[0], named / f"{family}_{given}_{other[0].name}")
    (tmp_path / "out").mkdir()
    with open(tmp_path / "out/dicom2nifti.log", "w") as log:
        cmd = [VOXFLOW, "dicom2nifti", str(named), str(tmp_path / "out/ct.nii.gz")]
        assert subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode == 1
    assert "patients in one folder" in (tmp_path / "out/dicom2nifti.log").read_text()
    _, hits = find_leaks([tmp_path / "out"], sources=[tmp_path / "in"])
    assert hits == [], report(hits)


def test_workdir_scan_leaves_the_code_out_and_finds_a_leak_in_a_log(workdir):
    """What the conftest hook runs after every test with a ``workdir`` (the DAG tests of mgmt,
    l3 and gwr): the copied code (it holds the phantom name lists) is left out, a log is not."""
    from voxflow.io.dicom_write import FAMILY_NAMES

    assert FAMILY_NAMES[0].encode() in (workdir / "src/voxflow/io/dicom_write.py").read_bytes()
    phantom = workdir / "resources/l3/phantom/raw/p001"
    write_series(phantom, np.zeros((4, 4, 3)), np.diag([-2.0, -2, 3, 1]), "p001", seed=SEED)
    dicom_to_nifti(phantom, workdir / "results/l3/ct/p001.nii.gz", workdir / "results/p001.json")
    assert workdir_leaks(workdir) == []
    family = identity("p001", SEED)["PatientName"].split("^")[0]
    log = workdir / "logs/l3/l3_ingest.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"reading {family.title()}\n")
    assert [(h.file, h.tag) for h in workdir_leaks(workdir)] == [
        (str(log.relative_to(workdir)), "PatientName")
    ]
    log.write_text("reading p001\n")  # the folder ID is no identifier: the hook passes
