import hashlib
import re

import pandas as pd
import pytest
from workflow_copy import REPO, rule_bodies


def _md5s(paths):
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in paths}


def test_dry_run_of_the_repository_config(snakemake, repo_workdir):
    proc = snakemake(repo_workdir, "-n", "--quiet", "rules")
    text = proc.stdout + proc.stderr
    for rule in ("brain_phantom", "ms_train", "qq_train"):
        assert rule in text


def test_dry_run_plans_every_rule(snakemake, workdir):
    out = snakemake(workdir, "-n").stdout
    for rule in ("brain_phantom", "brain_phantom_qc", "all"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out
    assert "sub-002" in out and "sub-003" not in out


@pytest.mark.slow
def test_full_run_outputs_logs_and_nothing_left_to_do(snakemake, finished_workdir):
    wd = finished_workdir
    qc = pd.read_csv(wd / "results/brain/phantom_qc.tsv", sep="\t")
    assert qc["subject"].tolist() == ["sub-001", "sub-002"]
    assert (qc["gm_ml"] > 700).all() and (qc["voxel_mm"] == 6.0).all()
    assert (wd / "results/brain/phantom_montage.png").read_bytes()[:4] == b"\x89PNG"
    log = (wd / "logs/brain/brain_phantom/sub-001.log").read_text()
    assert "brain phantom sub-001, seed 42" in log and "volumes (ml)" in log
    again = snakemake(wd, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_rerun_of_phantom_rule_is_byte_identical(snakemake, finished_workdir):
    wd = finished_workdir
    subj = sorted((wd / "resources/brain").glob("sub-*/*.nii.gz"))
    before = _md5s(subj)
    snakemake(wd, "--forcerun", "brain_phantom")
    assert _md5s(subj) == before
    sub1 = _md5s(sorted((wd / "resources/brain/sub-001").glob("*.nii.gz")))
    sub2 = _md5s(sorted((wd / "resources/brain/sub-002").glob("*.nii.gz")))
    assert sub1["gm.nii.gz"] != sub2["gm.nii.gz"]


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("sed=1", "config: sed: unknown key (did you mean 'seed'?)"),
        ('brain_phantom={"voxle_mm": 2}', "brain_phantom.voxle_mm: unknown key (did you mean"),
        ('ms={"chanels": ["flair"]}', "config: ms.chanels: unknown key (did you mean 'channels'?)"),
        ("device=gpu", "'gpu' is not one of"),
        ("studies=[mri]", "'mri' is not one of"),
    ],
)
def test_config_typos_rejected_with_key_named(snakemake, workdir, override, named):
    proc = snakemake(workdir, "-n", "--config", override, check=False)
    assert proc.returncode != 0
    assert named in proc.stdout + proc.stderr


def test_unknown_study_rejected(snakemake, workdir):
    proc = snakemake(workdir, "-n", "--config", "studies=[mgnt]", check=False)
    assert proc.returncode != 0
    assert "mgnt" in proc.stdout + proc.stderr


def test_missing_input_is_reported_by_snakemake(snakemake, workdir):
    # Without the rule that makes the phantom, the QC rule's inputs are missing.
    proc = snakemake(workdir, "--allowed-rules", "brain_phantom_qc", "all", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "MissingInputException" in text and "resources/brain/sub-001/t1.nii.gz" in text
    assert not (workdir / "results/brain/phantom_qc.tsv").exists()


def test_failing_rule_leaves_no_output_and_logs_reason(snakemake, workdir):
    # valid for the schema, refused by the library at run time
    (workdir / "bad.yaml").write_text("brain_phantom: {voxel_mm: 6.0, deformation_spacing_mm: 5}\n")
    proc = snakemake(workdir, "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    log = (workdir / "logs/brain/brain_phantom/sub-001.log").read_text()
    assert "ERROR" in log and "deformation_spacing_mm must be >= 2 x voxel_mm" in log
    assert "Traceback" not in log
    assert not list((workdir / "resources").rglob("*.nii.gz"))


def test_lint_is_clean(snakemake, repo_workdir):
    proc = snakemake(repo_workdir, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_profiles(snakemake, workdir):
    proc = snakemake(workdir, "--profile", "profiles/slurm", "-n", check=False)
    assert proc.returncode == 0, proc.stderr
    assert "profiles/slurm" in proc.stderr
    slurm = (workdir / "profiles/slurm/config.yaml").read_text()
    assert "executor: slurm" in slurm and "slurm-status-command: squeue" in slurm
    assert "slurm_partition" in slurm and "slurm_account" in slurm
    for smk in (workdir / "workflow/rules").glob("*.smk"):
        assert "slurm_" not in smk.read_text(), f"{smk.name}: cluster settings belong in profiles"
    assert "slurm" not in (workdir / "profiles/default/config.yaml").read_text().split("#")[0]


def test_every_rule_declares_log_conda_threads_resources(repo):
    for name, _, body in rule_bodies(repo):
        for directive in ("log:", "conda:", "threads:", "resources:", "mem_mb=", "runtime="):
            assert directive in body, f"rule {name} lacks {directive}"


def test_every_rule_benchmarks_beside_its_log(repo):
    """benchmarks/demo.py finds a job's wall/CPU/RSS next to its log, for every rule."""
    for name, _, body in rule_bodies(repo):
        log = re.search(r'log:\n\s+"(logs/[^"]+)\.log",?\n', body)
        bench = re.search(r'benchmark:\n\s+"([^"]+)",?\n', body)
        assert log and bench, f"rule {name} lacks a log: or benchmark: file"
        assert bench.group(1) == f"{log.group(1)}.benchmark.tsv", name
        assert f"/{name}/" in log.group(1), f"rule {name}: logs/<study>/{name}/... expected"


@pytest.mark.slow
def test_benchmark_report_of_a_finished_run(finished_workdir, capsys):
    """The per-rule table and the critical path come from what the run left behind."""
    demo = _load_benchmark_script()
    rows = demo.benchmark_rows(finished_workdir)
    table = {r[0]: r for r in demo.rule_table(rows)}
    assert table["brain_phantom"][1] == 2 and table["brain_phantom_qc"][1] == 1
    for rule, jobs, wall, longest, _cpu, _rss in table.values():
        assert jobs >= 1 and wall > 0 and longest <= wall, rule
    path = demo.critical_path(demo.read_metadata(finished_workdir))
    rules = [job.rule for job in path]
    assert rules[0] == "brain_template" and rules[-1] == "brain_phantom_qc", rules
    assert all(a.end <= b.start + 1.0 for a, b in zip(path, path[1:], strict=False))
    assert any(o.endswith("phantom_qc.tsv") for o in path[-1].outputs)
    demo.report(finished_workdir)
    out = capsys.readouterr().out
    assert "brain_phantom " in out and "critical path" in out and "jobs: " in out


def _load_benchmark_script():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("demo_bench", REPO / "benchmarks/demo.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _dicom_config(workdir, folder_name):
    (workdir / "dicom.yaml").write_text(f"dicom:\n  inputs:\n    ct: {folder_name}\n")
    return ["--configfile", "dicom.yaml"]


def test_dicom_rule_converts_configured_series(snakemake, workdir):
    import json

    import numpy as np
    from dicom_factory import write_series

    vol = np.arange(12 * 10 * 5, dtype=float).reshape(12, 10, 5) - 100
    write_series(workdir / "dicom" / "ct", vol)
    args = _dicom_config(workdir, "dicom/ct")
    snakemake(workdir, "results/dicom/ct.nii.gz", *args)
    info = json.loads((workdir / "results/dicom/ct.json").read_text())
    assert info["Shape"] == [12, 10, 5] and info["Modality"] == "CT"
    assert "chose series 2 'HEAD 5mm'" in (workdir / "logs/dicom/dicom_to_nifti/ct.log").read_text()
    # the default target includes configured conversions; all done now
    again = snakemake(workdir, *args, "-n")
    assert "dicom_to_nifti" not in again.stdout


def test_dicom_rule_refuses_bad_series_without_output(snakemake, workdir):
    import numpy as np
    from dicom_factory import write_series

    write_series(workdir / "dicom" / "ct", np.zeros((8, 8, 6)), skip_slices=(2,))
    proc = snakemake(
        workdir, "results/dicom/ct.nii.gz", *_dicom_config(workdir, "dicom/ct"), check=False
    )
    assert proc.returncode != 0
    log = (workdir / "logs/dicom/dicom_to_nifti/ct.log").read_text()
    assert "missing slice(s)" in log and "Traceback" not in log
    assert not list((workdir / "results").rglob("ct.*"))
    missing = snakemake(workdir, "--config", "dicom={inputs: {ct: nowhere}}", "-n", check=False)
    assert missing.returncode != 0 and "nowhere" in missing.stdout + missing.stderr
