"""Losses shared by the studies: BCE+Dice, Dice, multi-class Dice+CE, Huber, (weighted)
cross-entropy."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from voxflow.errors import VoxflowError


def soft_dice(probs: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Soft Dice per sample and channel, shape (B, C); inputs (B, C, ...) in [0, 1]."""
    dims = tuple(range(2, probs.ndim))
    inter = (probs * target).sum(dims)
    denom = probs.sum(dims) + target.sum(dims)
    return (2 * inter + eps) / (denom + eps)


class DiceLoss(nn.Module):
    """1 - soft Dice of sigmoid(logits) against a binary target (mean over batch and channels)."""

    def __init__(self, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 1.0 - soft_dice(torch.sigmoid(logits.float()), target.float(), self.eps).mean()


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCE-with-logits + dice_weight * Dice``; ``pos_weight`` up-weights lesions."""

    def __init__(
        self, bce_weight: float = 1.0, dice_weight: float = 1.0, pos_weight: float | None = None
    ) -> None:
        super().__init__()
        self.bce_weight, self.dice_weight = bce_weight, dice_weight
        pw = None if pos_weight is None else torch.tensor([float(pos_weight)])
        self.register_buffer("pos_weight", pw, persistent=False)
        self.dice = DiceLoss()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits, target = logits.float(), target.float()
        pw = None
        if self.pos_weight is not None:
            pw = self.pos_weight.to(logits.device).view(1, -1, *([1] * (logits.ndim - 2)))
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=pw)
        return self.bce_weight * bce + self.dice_weight * self.dice(logits, target)


class DiceCELoss(nn.Module):
    """Multi-class segmentation loss as nnU-Net uses it: cross-entropy + (1 - soft Dice of the
    softmax over the foreground classes, computed over the whole batch). Targets are integer
    label maps (B, 1, ...) or (B, ...)."""

    def __init__(self, ce_weight: float = 1.0, dice_weight: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.ce_weight, self.dice_weight, self.eps = ce_weight, dice_weight, eps

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        target = target.long().reshape(logits.shape[0], *logits.shape[2:])
        ce = F.cross_entropy(logits, target)
        probs = torch.softmax(logits, 1)
        onehot = F.one_hot(target, logits.shape[1]).movedim(-1, 1).float()
        dims = (0, *range(2, logits.ndim))
        inter = (probs * onehot).sum(dims)[1:]
        denom = (probs.sum(dims) + onehot.sum(dims))[1:]
        dice = ((2 * inter + self.eps) / (denom + self.eps)).mean()
        return self.ce_weight * ce + self.dice_weight * (1.0 - dice)


def hard_dice_per_sample(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean Dice over the foreground classes of argmax(logits), one value per sample (B,);
    a class absent from both prediction and target counts as 1."""
    k = logits.shape[1]
    pred = F.one_hot(logits.argmax(1), k).movedim(-1, 1).float()
    onehot = F.one_hot(target.long().reshape(pred.shape[0], *pred.shape[2:]), k)
    return soft_dice(pred, onehot.movedim(-1, 1).float())[:, 1:].mean(1)


class WeightedCrossEntropyLoss(nn.CrossEntropyLoss):
    """Cross-entropy over class logits (B, K, ...) with optional per-class weights."""

    def __init__(self, class_weights: Sequence[float] | None = None, **kwargs) -> None:
        weight = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)
        super().__init__(weight=weight, **kwargs)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.float(), target.long())


class MaskedHuberLoss(nn.Module):
    """Huber loss averaged over voxels where ``mask`` (optional 3rd input) is set."""

    def __init__(self, delta: float = 1.0) -> None:
        super().__init__()
        self.delta = delta

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        loss = F.huber_loss(pred.float(), target.float(), reduction="none", delta=self.delta)
        if mask is None:
            return loss.mean()
        mask = mask.float().expand_as(loss)
        return (loss * mask).sum() / mask.sum().clamp_min(1.0)


LOSSES = {
    "bce_dice": BCEDiceLoss,
    "dice": DiceLoss,
    "dice_ce": DiceCELoss,
    "huber": MaskedHuberLoss,
    "cross_entropy": WeightedCrossEntropyLoss,
    "bce": nn.BCEWithLogitsLoss,
}


def build_loss(name: str, **kwargs) -> nn.Module:
    """Loss by config name; ``kwargs`` go to its constructor (e.g. ``class_weights``)."""
    if name not in LOSSES:
        raise VoxflowError(f"loss '{name}' is unknown; choose one of {sorted(LOSSES)}")
    if name == "bce" and "pos_weight" in kwargs and kwargs["pos_weight"] is not None:
        kwargs["pos_weight"] = torch.tensor([float(kwargs["pos_weight"])])
    return LOSSES[name](**kwargs)
