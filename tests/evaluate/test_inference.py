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
