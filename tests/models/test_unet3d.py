import pytest
import torch

from voxflow.errors import VoxflowError
from voxflow.models.unet3d import ResidualUNet3D, UNet3D, build_unet, instance_norm
from voxflow.train.losses import BCEDiceLoss, soft_dice


@pytest.mark.parametrize("name", ["resunet3d", "unet3d"])
def test_shapes_and_gradients(name):
    torch.manual_seed(0)
    net = build_unet(name, in_channels=2, base_filters=4, depth=3)
    x = torch.randn(2, 2, 16, 24, 32)
    y = net(x)
    assert y.shape == (2, 1, 16, 24, 32)
    y.mean().backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_residual_structure_follows_paper():
    net = ResidualUNet3D(base_filters=8, depth=4)
    assert len(net.encoder) == 4 and len(net.decoder) == 4
    convs = [m for m in net.encoder[0].modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(convs) == 4  # block 1: four convolutions
    later = [m for m in net.encoder[1].modules() if isinstance(m, torch.nn.Conv3d)]
    assert len(later) == 3 and later[0].stride == (2, 2, 2)
    norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.num_groups == m.num_channels for m in norms)  # instance norm
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules())
    assert any(isinstance(m, torch.nn.LeakyReLU) for m in net.modules())
    assert any(isinstance(m, torch.nn.Dropout3d) for m in net.modules())
    ones = [
        m
        for m in net.decoder.modules()
        if isinstance(m, torch.nn.Conv3d) and m.kernel_size == (1, 1, 1)
    ]
    assert len(ones) == 4  # one 1x1x1 convolution per decoder block
    assert not any(isinstance(m, torch.nn.ConvTranspose3d) for m in net.modules())  # NN upsampling
    plain = UNet3D(base_filters=8, depth=4)
    assert any(isinstance(m, torch.nn.BatchNorm3d) for m in plain.modules())


@pytest.mark.parametrize("name", ["resunet3d", "unet3d"])
def test_learns_a_cube(name):
    torch.manual_seed(0)
    x = torch.zeros(1, 1, 16, 16, 16)
    x[..., 4:10, 5:11, 6:12] = 1.0
    x = x + 0.1 * torch.randn_like(x)
    y = (x > 0.5).float()
    net = build_unet(name, base_filters=4, depth=2, **({"dropout": 0.0} if name[0] == "r" else {}))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn = BCEDiceLoss()
    first = loss_fn(net(x), y).item()
    for _ in range(30):
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * first
    net.eval()
    assert soft_dice((net(x) > 0).float(), y).item() > 0.95


def test_bad_size_and_name():
    with pytest.raises(VoxflowError, match="divisible by 16"):
        ResidualUNet3D(base_filters=2)(torch.zeros(1, 1, 20, 16, 16))
    with pytest.raises(VoxflowError, match="resunet"):
        build_unet("resunet")


@pytest.mark.parametrize("channels_last", [False, True])
def test_instance_norm_equals_torch_instance_norm(channels_last):
    torch.manual_seed(0)
    x = torch.randn(2, 6, 5, 7, 9) * 3 + 1
    if channels_last:
        x = x.to(memory_format=torch.channels_last_3d)
    ours, ref = instance_norm(6), torch.nn.InstanceNorm3d(6, affine=True)
    with torch.no_grad():
        for p in (ours.weight, ref.weight, ours.bias, ref.bias):
            p.copy_(torch.arange(6.0) * 0.5 - 1)
    assert ours.state_dict().keys() == ref.state_dict().keys()
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)
