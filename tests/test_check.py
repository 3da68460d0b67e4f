import shutil

import numpy as np
import pytest
from shared_data import OPEN_MS, needs

from voxflow.check import check_cached, check_cohort
from voxflow.cli import load_config
from voxflow.errors import VoxflowError
from voxflow.io.dicom_write import write_series
from voxflow.io.images import read_image, write_nifti
from voxflow.io.layouts.ms import read_cohort
from voxflow.phantoms.ms import make_ms_subject, write_isbi2015
from voxflow.phantoms.qq import QQPhantomConfig, make_qq_subject, write_qq_subject

REPO_CONFIG = load_config(__import__("pathlib").Path(__file__).resolve().parents[1])


def config(**study_blocks):
    """The repository's validated config with some study blocks' keys replaced."""
    import copy

    cfg = copy.deepcopy(REPO_CONFIG)
    for study, block in study_blocks.items():
        cfg[study].update(block)
    return cfg


@pytest.fixture(scope="module")
def isbi(tmp_path_factory, request):
    """A valid three-case ISBI 2015 phantom cohort at 6 mm (copied per test)."""
    from voxflow.phantoms.brain import BrainPhantomConfig, make_brain

    root = tmp_path_factory.mktemp("isbi")
    brain = make_brain("sub-001", 42, BrainPhantomConfig(voxel_mm=6.0))
    for i in (1, 2, 3):
        write_isbi2015(make_ms_subject(brain, i), root, i)
    return root


@pytest.fixture()
def ms_root(isbi, tmp_path):
    shutil.copytree(isbi, tmp_path / "ms")
    return tmp_path / "ms"


def test_valid_ms_cohort_passes(ms_root):
    report = check_cohort("ms", ms_root, config())
    assert report.ok and report.subjects == 3, report.text()
    assert "3 subject(s), no problems" in report.summary()


def test_every_problem_of_a_cohort_is_reported_not_only_the_first(ms_root):
    cases = read_cohort("isbi2015", ms_root)
    flair = read_image(cases[0].channels["flair"])
    nan = flair.data.copy()
    nan[1, 1, 1] = np.nan
    write_nifti(cases[0].channels["flair"], nan, flair.affine)
    mask = read_image(cases[1].mask, dtype=None)
    write_nifti(cases[1].mask, mask.data * 2, mask.affine)  # values {0, 2}
    t2 = read_image(cases[2].channels["t2"])
    write_nifti(cases[2].channels["t2"], t2.data[:, :, 5], t2.affine)  # one slice: 2D
    report = check_cohort("ms", ms_root, config())
    assert len(report.problems) == 3, report.text()
    nan_line, values_line, flat_line = report.problems
    assert nan_line.startswith(f"{cases[0].channels['flair']}: 1 NaN/inf voxel(s)")
    assert values_line.startswith(f"{cases[1].mask}: lesion mask (binary 0/1) holds value(s) [2]")
    assert flat_line.startswith(f"{cases[2].channels['t2']}: t2 image is 2D")
    assert all("\n" not in p for p in report.problems)


def test_empty_mask_and_too_few_cases(ms_root):
    cases = read_cohort("isbi2015", ms_root)
    mask = read_image(cases[0].mask, dtype=None)
    write_nifti(cases[0].mask, np.zeros_like(mask.data), mask.affine)
    shutil.rmtree(ms_root / "training" / "training03")
    report = check_cohort("ms", ms_root, config())
    assert report.problems == [
        f"{cases[0].mask}: empty lesion mask (binary 0/1) (no labelled voxel)",
        f"{ms_root}: ms: 2 case(s); a train/val/test split needs at least 3",
    ]
    assert check_cohort("ms", ms_root, config(), split=False).problems == report.problems[:1]


@needs(OPEN_MS)
def test_shared_open_ms_data_patient_is_valid():
    report = check_cohort("ms", OPEN_MS, config(), layout="open_ms_data", split=False)
    assert report.ok and report.subjects == 1, report.text()


@needs(OPEN_MS)
def test_shared_patient_with_a_deleted_file_and_a_shifted_mask(tmp_path):
    import nibabel as nib

    root = tmp_path / "open_ms_data"
    shutil.copytree(OPEN_MS, root)
    (case,) = read_cohort("open_ms_data", root)
    case.channels["t2"].chmod(0o644)
    case.channels["t2"].unlink()
    img = nib.load(case.mask)
    shifted = img.affine.copy()
    shifted[:3, 3] += shifted[:3, 0]  # one voxel along i
    case.mask.chmod(0o644)
    nib.save(nib.Nifti1Image(np.asanyarray(img.dataobj), shifted), case.mask)
    report = check_cohort("ms", root, config(), layout="open_ms_data", split=False)
    assert report.problems == [
        f"{root}/patient26/T2_*.nii.gz: missing t2 image. Is the dataset complete?",
        f"{case.mask}: affine differs from that of {case.channels['flair']} (by up to 1 mm). "
        "Images of one subject must be co-registered on one grid",
    ]


def test_qq_wrong_echo_count_and_missing_ground_truth(tmp_path, small_brain):
    for name, n in (("sub-001", 8), ("sub-002", 7), ("sub-003", 8)):
        write_qq_subject(
            make_qq_subject(small_brain, 3, QQPhantomConfig(n_echoes=n)), tmp_path, name
        )
    (tmp_path / "sub-003" / "gt" / "Y.nii.gz").unlink()
    cfg = config(qq={"split": {"test": 1, "val": 1}})
    report = check_cohort("qq", tmp_path, cfg)
    assert report.problems == [
        f"{tmp_path}/sub-002/echo_times.json: subject sub-002 has 7 echoes but qq.n_echoes is 8. "
        "Fix the subject or set qq.n_echoes",
        f"{tmp_path}/sub-002/mgre.nii.gz: mGRE has 7 echoes along its last axis but "
        "qq.n_echoes is 8",
        f"{tmp_path}/sub-003/gt/Y.nii.gz: missing ground-truth Y. Is the dataset complete?",
    ]


def _l3_cohort(root, patients):
    """CT series of a few patients (tiny synthetic volumes) in the l3 layout."""
    affine = np.diag([8.0, 8.0, 10.0, 1.0])
    for k, p in enumerate(patients):
        data = np.full((8, 8, 12), -1000.0)
        data[2:6, 2:6, :] = 300.0 + k
        write_series(root / p, data, affine, p)


def test_l3_label_table_rows_are_checked_against_the_folders(tmp_path):
    _l3_cohort(tmp_path, ["p1", "p2", "p3"])
    (tmp_path / "l3_labels.csv").write_text(
        "patient,l3_first,l3_last,index_order\n"
        "p1,3,5,feet_to_head\n"
        "p9,3,5,feet_to_head\n"  # no such folder
        "p3,3,40,feet_to_head\n"  # beyond the series' 12 slices
    )
    report = check_cohort("l3", tmp_path, config(l3={"folds": 2}))
    csv = tmp_path / "l3_labels.csv"
    assert report.problems == [
        f"{csv}:3: unknown patient 'p9' (no such folder)",
        f"{csv}: no row for patient(s) ['p2']. Add their L3 slices",
        f"{csv}:4: l3_last 40 is out of range: patient 'p3' has 12 slices (0..11)",
    ]


def test_mixed_and_truncated_dicom_series_are_named(tmp_path):
    _l3_cohort(tmp_path, ["p1", "p2"])
    data = np.full((8, 8, 12), -1000.0)
    # a second reconstruction of p1 with as many slices: which one is meant?
    write_series(
        tmp_path / "p1",
        data,
        np.diag([8.0, 8.0, 10.0, 1.0]),
        "p1",
        series_key="b",
        prefix="B",
        series_number=3,
    )
    one = sorted((tmp_path / "p2").glob("*.dcm"))[4]
    one.write_bytes(one.read_bytes()[:300])
    (tmp_path / "l3_labels.csv").write_text(
        "patient,l3_first,l3_last,index_order\np1,3,5,feet_to_head\np2,3,5,feet_to_head\n"
    )
    report = check_cohort("l3", tmp_path, config(l3={"folds": 2}))
    assert len(report.problems) == 2, report.text()
    assert report.problems[0].startswith(f"{tmp_path / 'p1'}: mixed series: 2 series tie")
    assert report.problems[1].startswith(f"{one}: corrupt DICOM file")


def test_missing_root_is_one_problem(tmp_path):
    report = check_cohort("gwr", tmp_path / "nope", config())
    assert report.problems == [f"{tmp_path / 'nope'}: cohort root not found (not a folder)"]
    with pytest.raises(VoxflowError, match="unknown study 'xx'"):
        check_cohort("xx", tmp_path, config())


def test_a_passed_check_is_cached_until_a_file_changes(ms_root, tmp_path):
    cache = tmp_path / "cache"
    assert check_cached("ms", ms_root, config(), cache).ok
    assert check_cached("ms", ms_root, config(), cache) is None  # same files: skipped
    stamps = list(cache.iterdir())
    assert len(stamps) == 1
    flair = read_cohort("isbi2015", ms_root)[0].channels["flair"]
    vol = read_image(flair)
    write_nifti(flair, np.full_like(vol.data, 3.0), vol.affine)  # changed: checked again
    failed = check_cached("ms", ms_root, config(), cache)
    assert failed is not None and "empty flair image (every voxel is 3)" in failed.problems[0]
    assert list(cache.iterdir()) == stamps  # a failed check leaves no stamp
    # the settings count too
    assert check_cached("ms", ms_root, config(ms={"channels": ["t2"]}), cache).ok


@pytest.mark.skipif(__import__("os").geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_named(ms_root):
    flair = read_cohort("isbi2015", ms_root)[0].channels["flair"]
    flair.chmod(0)
    report = check_cohort("ms", ms_root, config())
    assert report.problems == [f"{flair}: permission denied. Make the file readable to this user"]
