import logging

import pytest

from voxflow.errors import VoxflowError, input_error
from voxflow.logs import rule_logging


def test_user_error_is_one_line_and_exits_1(tmp_path):
    log_file = tmp_path / "logs" / "rule.log"
    with pytest.raises(SystemExit) as exc, rule_logging(log_file):
        raise input_error("/data/x.nii.gz", "3 NaN voxel(s)", "Fix the input")
    assert exc.value.code == 1
    text = log_file.read_text()
    assert "ERROR" in text and "/data/x.nii.gz: 3 NaN voxel(s). Fix the input" in text
    assert "Traceback" not in text


def test_bug_is_logged_with_traceback_and_reraised(tmp_path):
    log_file = tmp_path / "rule.log"
    with pytest.raises(ZeroDivisionError), rule_logging(log_file) as log:
        log.info("working")
        _ = 1 / 0
    text = log_file.read_text()
    assert "working" in text and "Traceback" in text and "ZeroDivisionError" in text
    logging.shutdown()


def test_voxflow_error_is_exception():
    assert issubclass(VoxflowError, Exception)


def test_full_disk_is_one_line_not_a_bug_report(tmp_path):
    import errno

    log_file = tmp_path / "rule.log"
    with pytest.raises(SystemExit) as exit_info, rule_logging(log_file):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "out.nii.gz"))
    assert exit_info.value.code == 1
    text = log_file.read_text()
    assert "out.nii.gz: No space left on device" in text
    assert "voxflow bug" not in text and "Traceback" not in text
