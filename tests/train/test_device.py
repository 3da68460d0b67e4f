import pytest
import torch

from voxflow.errors import VoxflowError
from voxflow.train.device import select_device


def test_cpu_and_auto():
    assert select_device("cpu").type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert select_device("auto").type == expected


def test_cuda_requested_without_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(VoxflowError, match="device: cuda was requested"):
        select_device("cuda")
    with pytest.raises(VoxflowError, match="not one of"):
        select_device("gpu")
