"""GPU counting for the `gpu` resource, without torch."""

import pytest

from voxflow.gpus import gpus_per_job, visible_cuda_gpus


@pytest.mark.parametrize(
    ("device", "visible", "expected"),
    [
        ("auto", 0, 0),  # CPU-only workstation: --resources gpu=1 must not serialise
        ("auto", 2, 1),
        ("cpu", 2, 0),
        ("cuda", 0, 1),
    ],
)
def test_gpus_per_job(device, visible, expected):
    assert gpus_per_job(device, visible) == expected


def test_visible_gpus_from_driver_and_cuda_visible_devices(tmp_path, monkeypatch):
    proc = tmp_path / "gpus"
    proc.mkdir()
    for bus in ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0"):
        (proc / bus).mkdir()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_cuda_gpus(proc) == 3
    for value, n in [("1", 1), ("0,2", 2), ("", 0), ("-1", 0), ("0,1,2,3,4", 3)]:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", value)
        assert visible_cuda_gpus(proc) == n


def test_no_driver_no_gpus(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no nvidia-smi either
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_cuda_gpus(tmp_path / "absent") == 0
