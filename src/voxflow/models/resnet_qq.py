"""The qq study's networks: the paper's 3D ResNet and the plain 3D CNN of the same depth.

3D ResNet (../shared/specs/qq.md): Conv3d(stem)-BN-ReLU; residual blocks with
``block_filters`` (paper 16, 16, 32, 32), each [conv3-BN-ReLU, conv3-BN-ReLU, conv3-BN] plus a
shortcut (identity, or a 1x1x1 convolution where the channel count changes), then ReLU; a 1x1x1
convolution to the 5 parameter maps. No pooling: input and output have the same size, so the
network maps every voxel's echo decay and susceptibility (with its neighbourhood) to its
parameters. The 3D CNN baseline is the same stack without the shortcuts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from voxflow.errors import VoxflowError


def conv_bn(cin: int, cout: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv3d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm3d(cout)]


class ResBlock(nn.Module):
    """Three 3x3x3 conv-BN (ReLU between), shortcut added before the final ReLU."""

    def __init__(self, cin: int, cout: int, residual: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_bn(cin, cout),
            nn.ReLU(inplace=True),
            *conv_bn(cout, cout),
            nn.ReLU(inplace=True),
            *conv_bn(cout, cout),
        )
        self.residual = residual
        self.shortcut: nn.Module = (
            nn.Identity() if cin == cout else nn.Conv3d(cin, cout, 1, bias=False)
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        if self.residual:
            out = out + self.shortcut(x)
        return self.act(out)


class QQResNet3D(nn.Module):
    """The paper's 3D ResNet (``residual=True``) or its plain 3D CNN twin (``residual=False``)."""

    def __init__(
        self,
        in_channels: int = 9,
        out_channels: int = 5,
        stem_filters: int = 16,
        block_filters: Sequence[int] = (16, 16, 32, 32),
        residual: bool = True,
    ) -> None:
        super().__init__()
        if not block_filters:
            raise VoxflowError("qq model: block_filters must list at least one block")
        self.stem = nn.Sequential(*conv_bn(in_channels, stem_filters), nn.ReLU(inplace=True))
        blocks, cin = [], stem_filters
        for f in block_filters:
            blocks.append(ResBlock(cin, int(f), residual))
            cin = int(f)
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv3d(cin, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise VoxflowError(f"qq model input {tuple(x.shape)}: need (B, C, D, H, W)")
        return self.head(self.blocks(self.stem(x)))


def build_qq_model(name: str, **kwargs) -> nn.Module:
    """``resnet3d`` (the paper's network) or ``cnn3d`` (baseline without shortcuts)."""
    if name not in ("resnet3d", "cnn3d"):
        raise VoxflowError(f"qq model '{name}' is unknown; choose resnet3d or cnn3d")
    return QQResNet3D(residual=name == "resnet3d", **kwargs)
