"""Seconds per ms training step, with and without TorchIO augmentation and the patch queue.

    .venv/bin/python benchmarks/ms_loader.py [--subjects 8] [--steps 40] [--threads 1]
        [--workdir /tmp/ms-loader]

At the demo settings (config/config.yaml's ms block, FLAIR, Residual U-Net) it times:
  * compute: forward + backward + Adam step on batches already in memory;
  * queue:   drawing a batch from the tio.Queue (LabelSampler) without augmentation;
  * queue+aug: the same with the configured augmentation pipeline;
and prints the share of a full step spent on loading + augmentation (goal: <= 20 %), plus
sliding-window inference per patch with batches of 1 and 4.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import yaml
from _ms_cohort import demo_cohort

from voxflow.augment import build_augmentation, patch_queue
from voxflow.logs import setup_logging
from voxflow.studies import ms
from voxflow.train.losses import BCEDiceLoss

REPO = Path(__file__).resolve().parents[1]


def _time_batches(loader, steps: int) -> float:
    it = iter(loader)
    next(it)  # warm-up (queue fill is amortised over samples_per_volume batches)
    t0 = time.perf_counter()
    for _ in range(steps):
        try:
            next(it)
        except StopIteration:
            it = iter(loader)
            next(it)
    return (time.perf_counter() - t0) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--subjects", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--channel", default="flair")
    ap.add_argument("--model", default="resunet3d")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ms-loader"))
    args = ap.parse_args()
    setup_logging()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg = config["ms"]
    dirs = demo_cohort(
        args.workdir, args.subjects, config["seed"], config["brain_phantom"]["voxel_mm"]
    )
    chans = [args.channel]

    def loader(augment: bool):
        import torchio as tio

        aug = build_augmentation(cfg["augment"]) if augment else None
        ds = tio.SubjectsDataset(ms._subjects(dirs, chans), transform=aug)
        queue = patch_queue(ds, cfg["patch_size"], cfg["samples_per_volume"])
        return torch.utils.data.DataLoader(queue, batch_size=cfg["batch_size"], num_workers=0)

    t_queue = _time_batches(loader(False), args.steps)
    t_aug = _time_batches(loader(True), args.steps)

    cl = torch.channels_last_3d  # as the trainer does on CPU (train.memory_format: auto)
    model = ms.build_model(args.model, len(chans), cfg["model"]).to(memory_format=cl)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = BCEDiceLoss()
    batches = [b for _, b in zip(range(4), loader(False), strict=False)]
    model.train()

    def step(b) -> None:
        x, y = ms._input_tensor(b, chans).contiguous(memory_format=cl), b["label"]["data"].float()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

    step(batches[0])
    t0 = time.perf_counter()
    for i in range(args.steps):
        step(batches[i % len(batches)])
    t_compute = (time.perf_counter() - t0) / args.steps

    model.eval()
    infer = {}
    with torch.no_grad():
        for n in (1, 4):
            x = torch.randn(n, len(chans), *[cfg["patch_size"]] * 3).contiguous(memory_format=cl)
            model(x)
            t0 = time.perf_counter()
            for _ in range(max(2, 8 // n)):
                model(x)
            infer[n] = (time.perf_counter() - t0) / max(2, 8 // n) / n

    p, bs = cfg["patch_size"], cfg["batch_size"]
    print(
        f"ms loader benchmark: {args.model} {args.channel}, patch {p}^3, batch {bs}, "
        f"{args.threads} thread(s), {args.subjects} subjects"
    )
    print(f"  compute (fwd+bwd+Adam):        {t_compute * 1e3:8.1f} ms/step")
    print(f"  queue, no augmentation:        {t_queue * 1e3:8.1f} ms/batch")
    print(f"  queue + augmentation:          {t_aug * 1e3:8.1f} ms/batch")
    print(f"  inference, batch 1 / batch 4:  {infer[1] * 1e3:8.1f} / {infer[4] * 1e3:.1f} ms/patch")
    share = t_aug / (t_aug + t_compute)
    print(f"  loading + augmentation share:  {share * 100:8.1f} % of a step (goal <= 20 %)")


if __name__ == "__main__":
    main()
