import pytest
import torch

from voxflow.errors import VoxflowError
from voxflow.train.losses import (
    BCEDiceLoss,
    DiceLoss,
    MaskedHuberLoss,
    build_loss,
    soft_dice,
)


def test_soft_dice_perfect_and_disjoint():
    t = torch.zeros(1, 1, 4, 4, 4)
    t[..., :2] = 1
    assert soft_dice(t, t).item() == pytest.approx(1.0)
    assert soft_dice(1 - t, t).item() == pytest.approx(0.0, abs=1e-6)


def test_bce_dice_is_sum_of_parts_and_decreases_with_better_logits():
    t = (torch.rand(2, 1, 6, 6, 6, generator=torch.Generator().manual_seed(0)) > 0.7).float()
    good, bad = (t * 2 - 1) * 5, -(t * 2 - 1) * 5
    loss = BCEDiceLoss()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(good, t) + DiceLoss()(good, t)
    assert loss(good, t).item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss(good, t) < loss(bad, t)
    # pos_weight up-weights missed lesion voxels
    assert BCEDiceLoss(pos_weight=10.0)(bad, t) > loss(bad, t)


def test_weighted_cross_entropy_matches_manual():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    target = torch.tensor([1, 1])
    w = build_loss("cross_entropy", class_weights=[1.0, 3.0])
    expected = torch.nn.functional.cross_entropy(logits, target)  # equal weights on one class
    assert w(logits, target).item() == pytest.approx(expected.item())
    unweighted = build_loss("cross_entropy")
    t2 = torch.tensor([0, 1])
    assert w(logits, t2).item() != pytest.approx(unweighted(logits, t2).item())


def test_masked_huber():
    pred, target = torch.tensor([0.0, 0.0, 10.0]), torch.tensor([0.5, 0.0, 0.0])
    mask = torch.tensor([1.0, 1.0, 0.0])
    assert MaskedHuberLoss()(pred, target, mask).item() == pytest.approx(0.125 / 2)
    assert MaskedHuberLoss()(pred, target).item() == pytest.approx((0.125 + 9.5) / 3)


def test_unknown_loss():
    with pytest.raises(VoxflowError, match="bce_dise"):
        build_loss("bce_dise")


def test_dice_ce_is_low_for_the_right_classes_and_high_otherwise():
    import torch

    from voxflow.train.losses import DiceCELoss, hard_dice_per_sample

    target = torch.zeros(2, 1, 4, 4, 4, dtype=torch.long)
    target[:, :, :2] = 1
    target[:, :, 2:, :2] = 2
    right = torch.nn.functional.one_hot(target[:, 0], 3).movedim(-1, 1).float() * 20
    wrong = right.roll(1, dims=1)
    loss = DiceCELoss()
    assert loss(right, target) < 0.01 < 1.0 < loss(wrong, target)
    assert hard_dice_per_sample(right, target).tolist() == [1.0, 1.0]
    assert hard_dice_per_sample(wrong, target).max() < 0.01
    # gradients flow
    logits = torch.zeros(2, 3, 4, 4, 4, requires_grad=True)
    loss(logits, target).backward()
    assert logits.grad.abs().sum() > 0
