import numpy as np
import torch
import torchio as tio

from voxflow.evaluate.inference import sliding_window


def test_sliding_window_softmax_sums_to_one_over_the_volume():
    model = torch.nn.Conv3d(1, 3, 1)
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 12, 10, 9)))
    probs = sliding_window(
        model, subject, lambda b: b["image"]["data"].float(), 8, 2, "cpu", "softmax"
    )
    assert probs.shape == (3, 12, 10, 9)
    assert np.allclose(probs.sum(0), 1, atol=1e-5)
    expected = torch.softmax(model(subject["image"].data[None].float()), 1)[0].detach().numpy()
    assert np.allclose(probs, expected, atol=1e-5)


class _XRamp(torch.nn.Module):
    """Logits that depend on position along x only through the input (not symmetric)."""

    def forward(self, x):
        ramp = torch.linspace(0, 3, x.shape[2]).view(1, 1, -1, 1, 1)
        return torch.cat([x + ramp, -x], 1)


def test_mirroring_averages_the_flipped_predictions():
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 8, 8, 8)))
    x = subject["image"].data[None].float()

    def run(axes):
        return sliding_window(
            _XRamp(),
            subject,
            lambda b: b["image"]["data"].float(),
            8,
            0,
            "cpu",
            "softmax",
            mirror_axes=axes,
        )

    plain, flipped = torch.softmax(_XRamp()(x), 1), torch.softmax(_XRamp()(x.flip(2)), 1).flip(2)
    assert np.allclose(run(()), plain[0].numpy(), atol=1e-6)
    assert np.allclose(run([0]), ((plain + flipped) / 2)[0].numpy(), atol=1e-6)
    assert not np.allclose(run([0]), run(()))
    # a flip along an axis the model is symmetric in changes nothing
    assert np.allclose(run([1, 2]), run(()), atol=1e-6)


def test_a_volume_of_patch_size_is_one_unpadded_pass():
    subject = tio.Subject(image=tio.ScalarImage(tensor=torch.rand(1, 8, 6, 4)))
    x = subject["image"].data[None].float()
    expected = torch.softmax(_XRamp()(x), 1)[0].numpy()  # depends on where voxels sit
    probs = sliding_window(
        _XRamp(),
        subject,
        lambda b: b["image"]["data"].float(),
        [8, 6, 4],
        [4, 2, 2],
        "cpu",
        "softmax",
    )
    assert np.allclose(probs, expected, atol=1e-6)
