"""Benchmark of the shared engine: phantom generation, NIfTI I/O, trainer throughput, metrics.

    .venv/bin/python benchmarks/engine.py [--quick]

Prints one line per figure (wall-clock seconds on this machine; the trainer line also gives
samples/s and the per-epoch checkpoint overhead). Nothing here is asserted: goals are read off.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from voxflow.evaluate.metrics import dice, hd95, lesion_detection
from voxflow.io.images import read_image, write_nifti
from voxflow.phantoms.brain import BrainPhantomConfig, _template, make_brain
from voxflow.train.loop import TrainConfig, Trainer
from voxflow.train.losses import BCEDiceLoss


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="skip the 1 mm phantom")
    args = ap.parse_args()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"cpu capability {torch.backends.cpu.get_cpu_capability()}"
    )
    _, t = timed(_template)
    print(f"mni152 template load (nilearn, 1 mm, 4 maps):   {t:6.2f} s")
    sizes = [3.0, 2.0] if args.quick else [3.0, 2.0, 1.0]
    brains = {}
    for v in sizes:
        brains[v], t = timed(make_brain, "sub-001", 42, BrainPhantomConfig(voxel_mm=v))
        shape = "x".join(map(str, brains[v].t1.shape))
        print(f"brain phantom {v:.0f} mm ({shape}) first subject: {t:6.2f} s")
        _, t = timed(make_brain, "sub-002", 42, BrainPhantomConfig(voxel_mm=v))
        print(f"brain phantom {v:.0f} mm next subject:              {t:6.2f} s")
    finest = brains[min(sizes)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t1.nii.gz"
        _, t = timed(write_nifti, path, finest.t1, finest.affine)
        mb = finest.t1.nbytes / 1e6
        print(f"write .nii.gz {mb:.0f} MB float32:                 {t:6.2f} s ({mb / t:.0f} MB/s)")
        _, t = timed(read_image, path)
        print(f"read  .nii.gz {mb:.0f} MB float32:                 {t:6.2f} s ({mb / t:.0f} MB/s)")
    truth = finest.wm > 0.5
    pred = np.roll(truth, 2, axis=0)
    _, t = timed(dice, pred, truth)
    print(f"dice on {truth.size / 1e6:.1f} Mvoxels:                       {t:6.3f} s")
    _, t = timed(hd95, pred, truth, finest.affine.diagonal()[:3])
    print(f"hd95 on {truth.size / 1e6:.1f} Mvoxels:                       {t:6.2f} s")
    _, t = timed(lesion_detection, pred, truth)
    print(f"lesion-wise F1 on {truth.size / 1e6:.1f} Mvoxels:             {t:6.2f} s")

    # trainer: a small 3D conv net on 64^3 patches, batch 2, 8 steps per epoch, 2 epochs
    g = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.randn(2, 1, 64, 64, 64, generator=g),
            (torch.rand(2, 1, 64, 64, 64, generator=g) > 0.9).float(),
        )
        for _ in range(8)
    ]

    def net() -> nn.Module:
        return nn.Sequential(
            nn.Conv3d(1, 16, 3, padding=1),
            nn.InstanceNorm3d(16),
            nn.LeakyReLU(),
            nn.Conv3d(16, 16, 3, padding=1),
            nn.LeakyReLU(),
            nn.Conv3d(16, 1, 1),
        )

    with tempfile.TemporaryDirectory() as tmp:
        # bf16 gets a single batch: on CPUs without native bf16 it is many times slower
        for amp, train in (("off", batches), ("bf16", batches[:1])):
            cfg = TrainConfig(epochs=2, device="cpu", amp=amp, patience=0)
            trainer = Trainer(net, BCEDiceLoss(), cfg, Path(tmp) / amp)
            res, t = timed(trainer.fit, train, batches[:1])
            h = res.history
            n = 2 * len(train) * len(h)
            print(
                f"trainer 64^3 amp={amp:4s} {len(h)} epochs x {n // len(h):2d} samples:  "
                f"{t:6.2f} s "
                f"({h['samples_per_s'].mean():.2f} samples/s, epoch {h['seconds'].mean():.2f} s)"
            )
        ckpt = Path(tmp) / "off" / "checkpoint_last.pt"
        _, t = timed(torch.load, ckpt, weights_only=True)
        print(
            f"checkpoint_last.pt load ({ckpt.stat().st_size / 1e3:.0f} kB):            {t:6.3f} s"
        )
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
