import json

import numpy as np
import pytest

from voxflow.errors import VoxflowError
from voxflow.io.images import write_nifti
from voxflow.io.layouts.qq import check_cohort_echoes, load_case, read_cohort
from voxflow.phantoms.qq import QQPhantomConfig, make_qq_subject, write_qq_subject


@pytest.fixture()
def cohort(tmp_path, small_brain):
    for name, n in (("sub-001", 8), ("sub-002", 7)):
        sub = make_qq_subject(small_brain, 3, QQPhantomConfig(n_echoes=n))
        write_qq_subject(sub, tmp_path, name)
    return tmp_path


def test_reads_a_subject(cohort):
    cases = read_cohort(cohort)
    assert [c.subject for c in cases] == ["sub-001", "sub-002"]
    data = load_case(cases[0], 8)
    assert data.mgre.shape[-1] == 8 and data.mgre.shape[:3] == data.qsm.shape
    assert set(data.gt) == {"S0", "R2", "Y", "v", "chi_nb"}
    assert data.mask.any() and data.echo_times[0] == pytest.approx(0.0045)


def test_wrong_echo_count_names_subject_and_counts(cohort):
    cases = read_cohort(cohort)
    with pytest.raises(VoxflowError, match=r"sub-002 has 7 echoes but qq.n_echoes is 8"):
        load_case(cases[1], 8)
    with pytest.raises(VoxflowError, match=r"sub-002 \(7\)"):
        check_cohort_echoes(cases, 8)


def test_mgre_echo_axis_must_match_echo_times(cohort):
    case = read_cohort(cohort)[0]
    json_te = json.loads(case.echo_times.read_text())
    case.echo_times.write_text(json.dumps(json_te[:7]))
    with pytest.raises(VoxflowError, match="not 4D with 7 echoes"):
        load_case(case, 7)


def test_nan_and_geometry_errors_name_the_file(cohort):
    case = read_cohort(cohort)[0]
    data = load_case(case, 8)
    qsm = data.qsm.copy()
    qsm[0, 0, 0] = np.nan
    write_nifti(case.qsm, qsm, data.affine)
    with pytest.raises(VoxflowError, match=r"qsm.nii.gz: 1 NaN"):
        load_case(case, 8)
    write_nifti(case.qsm, data.qsm[:-1], data.affine)
    with pytest.raises(VoxflowError, match="shape"):
        load_case(case, 8)


def test_bad_echo_times_files(cohort):
    case = read_cohort(cohort)[0]
    case.echo_times.write_text("[4.5, 9.5]")
    with pytest.raises(VoxflowError, match="look like ms"):
        load_case(case, 2)
    case.echo_times.write_text("[0.01, 0.005]")
    with pytest.raises(VoxflowError, match="increase"):
        load_case(case, 2)
    case.echo_times.write_text("not json")
    with pytest.raises(VoxflowError, match="JSON"):
        load_case(case, 2)


def test_missing_root_and_empty_root(tmp_path):
    with pytest.raises(VoxflowError, match="not found"):
        read_cohort(tmp_path / "nope")
    with pytest.raises(VoxflowError, match="no subject folder"):
        read_cohort(tmp_path)
