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
) -> np.ndarray:
    """Probabilities (C, ...) over a TorchIO subject (GridSampler + averaging GridAggregator).

    ``input_fn`` turns a batch of patches into the model's input tensor; ``activation`` is
    ``sigmoid`` (independent channels) or ``softmax`` (classes). Patches go through in batches:
    on CPU, oneDNN's 3D convolutions are about 5x slower per patch with a batch of one
    (benchmarks/ms_loader.py)."""
    import torch
    import torchio as tio

    act = {"sigmoid": torch.sigmoid, "softmax": lambda t: torch.softmax(t, 1)}[activation]
    sampler = tio.GridSampler(subject, patch, overlap, padding_mode=0)
    aggregator = tio.GridAggregator(sampler, overlap_mode="average")
    loader = torch.utils.data.DataLoader(sampler, batch_size=batch_size)
    model.eval()
    with torch.no_grad():
        for b in loader:
            logits = model(input_fn(b).to(device))
            aggregator.add_batch(act(logits.float()).cpu(), b[tio.LOCATION])
    return aggregator.get_output_tensor().numpy()
