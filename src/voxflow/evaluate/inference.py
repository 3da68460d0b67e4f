"""Sliding-window inference over a whole volume, shared by the segmentation studies."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def sliding_window(
    model,
    subject,
    input_fn: Callable[[Any], Any],
    patch: int | Sequence[int],
    overlap: int | Sequence[int],
    device,
    activation: str = "sigmoid",
    batch_size: int = 4,
    mirror_axes: Sequence[int] = (),
) -> np.ndarray:
    """Probabilities (C, ...) over a TorchIO subject (GridSampler + averaging GridAggregator).

    ``input_fn`` turns a batch of patches into the model's input tensor; ``activation`` is
    ``sigmoid`` (independent channels) or ``softmax`` (classes). Patches go through in batches:
    on CPU, oneDNN's 3D convolutions are about 5x slower per patch with a batch of one
    (benchmarks/ms_loader.py). A volume of exactly the patch size is one pass, unpadded.
    ``mirror_axes`` (spatial axes, 0-2) adds nnU-Net's test-time
    mirroring: the probabilities are averaged over every combination of flips along them."""
    from itertools import combinations

    import torch
    import torchio as tio

    act = {"sigmoid": torch.sigmoid, "softmax": lambda t: torch.softmax(t, 1)}[activation]
    patch = [patch] * 3 if isinstance(patch, int) else list(patch)
    if list(subject.spatial_shape) == patch:
        # one patch is the whole volume (e.g. a study's ROI): a single pass, no padding, so a
        # model that learnt where things sit in its input sees them where they were in training
        overlap = 0
    sampler = tio.GridSampler(subject, patch, overlap, padding_mode=0)
    aggregator = tio.GridAggregator(sampler, overlap_mode="average")
    loader = torch.utils.data.DataLoader(sampler, batch_size=batch_size)
    dims = [a + 2 for a in mirror_axes]
    flips = [list(c) for k in range(len(dims) + 1) for c in combinations(dims, k)]

    def predict(x, dims: list[int]):
        if not dims:
            return act(model(x).float())
        return act(model(x.flip(dims)).float()).flip(dims)

    model.eval()
    with torch.no_grad():
        for b in loader:
            x = input_fn(b).to(device)
            probs = sum(predict(x, f) for f in flips) / len(flips)
            aggregator.add_batch(probs.cpu(), b[tio.LOCATION])
    return aggregator.get_output_tensor().numpy()
