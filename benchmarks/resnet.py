"""Benchmark: the ResNets of the l3 and mgmt studies.

    .venv/bin/python benchmarks/resnet.py [--threads 2] [--batch 16] [--steps 3] [--mgmt]

Prints training throughput (forward + backward + SGD step, images/s) and peak memory of
MONAI's ResNet50 at the paper's 224 x 224 with the standard stride-2 stem (what
``voxflow.models.resnet`` builds) against MONAI's default stride-1 stem, and of the l3 demo
network (ResNet10, a quarter of the widths, 64 x 64), on this machine's CPU threads. With
``--mgmt``: the mgmt study's 3D ResNet50 on 64^3 volumes (both stems; batch 2) and its demo
networks (2D on 64 x 64 slices, 3 channels; 3D on 64^3). Nothing is asserted: the figures in
the README are read off here.
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from voxflow.models.resnet import build_resnet


def throughput(
    model: torch.nn.Module, size: int, batch: int, steps: int, dims: int = 2, channels: int = 1
) -> float:
    """Training images per second (one warm-up step not counted)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    x = torch.rand(batch, channels, *[size] * dims)  # throughput only: values do not matter
    out = model(x[:2]).shape[1]
    y = (torch.arange(batch) % 2).float()[:, None].expand(-1, out)
    model.train()
    for i in range(steps + 1):
        if i == 1:
            t0 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        opt.step()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--mgmt", action="store_true", help="the mgmt study's networks")
    args = ap.parse_args()
    if args.mgmt:
        return mgmt(args)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    stride1 = build_resnet(depth=50)
    stride1.conv1.stride = (1, 1)  # MONAI's default conv1_t_stride=1
    cases = [
        ("ResNet50, stride-2 stem (voxflow), 224 px", build_resnet(depth=50), 224),
        ("ResNet50, stride-1 stem (MONAI default), 224 px", stride1, 224),
        ("ResNet10 x 0.25 widths (l3 demo), 64 px", build_resnet(10, widen_factor=0.25), 64),
    ]
    print(f"threads {args.threads}, batch {args.batch}, {args.steps} timed steps")
    rates = []
    for name, model, size in cases:
        rate = throughput(model, size, args.batch, args.steps)
        rates.append(rate)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name}: {rate:8.1f} slices/s  ({params:.2f} M parameters, peak RSS {rss:.0f} MB)")
    print(f"stride-1 / stride-2 ResNet50 time per slice: {rates[0] / rates[1]:.1f}x")


def mgmt(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    stride1 = build_resnet(50, 3, 1, 2)
    stride1.conv1.stride = (1, 1, 1)
    cases = [  # name, model, size, dims, channels, batch
        ("3D ResNet50, stride-2 stem (voxflow), 64^3", build_resnet(50, 3, 1, 2), 64, 3, 1, 2),
        ("3D ResNet50, stride-1 stem (MONAI default), 64^3", stride1, 64, 3, 1, 2),
        (
            "2D ResNet10 x 0.25 (mgmt demo), 64 px, 3 ch",
            build_resnet(10, 2, 3, 2, 0.25),
            64,
            2,
            3,
            args.batch,
        ),
        ("3D ResNet10 x 0.25 (mgmt demo), 64^3", build_resnet(10, 3, 1, 2, 0.25), 64, 3, 1, 8),
    ]
    print(f"threads {args.threads}, {args.steps} timed steps")
    rates = []
    for name, model, size, dims, ch, batch in cases:
        if dims == 3:
            model = model.to(memory_format=torch.channels_last_3d)  # as the Trainer on CPU
        rate = throughput(model, size, batch, args.steps, dims, ch)
        rates.append(rate)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(
            f"{name}: {rate:8.2f} images/s (batch {batch}, {params:.2f} M parameters, "
            f"peak RSS {rss:.0f} MB)"
        )
    print(f"stride-1 / stride-2 3D ResNet50 time per volume: {rates[0] / rates[1]:.1f}x")


if __name__ == "__main__":
    main()
