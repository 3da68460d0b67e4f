import pytest
import torch

from voxflow.errors import VoxflowError
from voxflow.models.resnet import build_resnet


def test_stem_is_the_standard_stride_two():
    model = build_resnet(depth=10, spatial_dims=2, widen_factor=0.25)
    assert model.conv1.stride == (2, 2) and model.conv1.kernel_size == (7, 7)
    assert model.conv1.out_channels == 16
    out = model(torch.zeros(3, 1, 64, 64))
    assert out.shape == (3, 1)


def test_resnet50_has_bottlenecks_and_the_paper_widths():
    model = build_resnet(depth=50, spatial_dims=2)
    assert type(model.layer1[0]).__name__ == "ResNetBottleneck"
    assert [len(getattr(model, f"layer{i}")) for i in range(1, 5)] == [3, 4, 6, 3]
    assert model.fc.in_features == 2048
    n = sum(p.numel() for p in model.parameters())
    assert 23e6 < n < 24e6  # ResNet50 with one output


def test_3d_variant_and_bad_settings():
    model = build_resnet(depth=18, spatial_dims=3, in_channels=4, num_classes=2, widen_factor=0.125)
    assert model.eval()(torch.zeros(1, 4, 32, 32, 16)).shape == (1, 2)
    with pytest.raises(VoxflowError, match="depth"):
        build_resnet(depth=20)
    with pytest.raises(VoxflowError, match="widen_factor"):
        build_resnet(widen_factor=0)
