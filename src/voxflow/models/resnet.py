"""ResNet classifiers (2D or 3D) from MONAI, with the standard stride-2 stem.

MONAI's ``ResNet`` defaults to a stride-1 7x7 stem (``conv1_t_stride=1``), which keeps the full
resolution through the first stage and makes a ResNet50 about nine times slower than the
torchvision/He et al. network; every model here sets stride 2 (then the 3x3 max-pool), so a
224-pixel slice reaches the residual stages at 56 pixels, as in the paper's ResNet50.
``depth`` picks the standard stage layout (10, 18, 34: basic blocks; 50: bottlenecks) and
``widen_factor`` scales every stage's width (1.0 = the standard 64-128-256-512 channels; the
demo presets use a narrower network so they train on two CPU cores).
"""

from __future__ import annotations

from torch import nn

from voxflow.errors import VoxflowError

LAYERS = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3]}


def build_resnet(
    depth: int = 50,
    spatial_dims: int = 2,
    in_channels: int = 1,
    num_classes: int = 1,
    widen_factor: float = 1.0,
) -> nn.Module:
    """A ResNet-``depth`` classifier whose output is ``num_classes`` logits per image."""
    from monai.networks.nets import ResNet
    from monai.networks.nets.resnet import ResNetBlock, ResNetBottleneck

    if depth not in LAYERS:
        raise VoxflowError(f"model.depth: {depth} not one of {sorted(LAYERS)}")
    if spatial_dims not in (2, 3):
        raise VoxflowError(f"model: spatial_dims must be 2 or 3, got {spatial_dims}")
    if not 0 < widen_factor <= 4:
        raise VoxflowError(f"model.widen_factor: {widen_factor} must be within (0, 4]")
    widths = [max(int(round(c * widen_factor)), 4) for c in (64, 128, 256, 512)]
    return ResNet(
        ResNetBottleneck if depth == 50 else ResNetBlock,
        LAYERS[depth],
        widths,
        spatial_dims=spatial_dims,
        n_input_channels=in_channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        num_classes=num_classes,
    )
