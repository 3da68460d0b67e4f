import numpy as np
import pytest
import torch

from voxflow.errors import VoxflowError
from voxflow.train.device import seed_everything, select_device


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


def test_seed_everything_reproducible():
    seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
