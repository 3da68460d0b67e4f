"""A small real training run for the trainer tests (run as a subprocess so it can be killed).

Task: segment white matter (WM probability > 0.5) from the T1 of brain phantom subjects at 6 mm,
on random 16^3 patches; 3 training subjects, 1 validation subject. Usage:
    python tiny_training.py OUT_DIR EPOCHS [PATIENCE]
Prints the final history as TSV on stdout.
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from voxflow.logs import setup_logging
from voxflow.phantoms.brain import BrainPhantomConfig, make_brain
from voxflow.train.loop import Metric, TrainConfig, Trainer
from voxflow.train.losses import BCEDiceLoss, soft_dice

PATCH = 16


class Patches(Dataset):
    """Random patches (drawn with NumPy's global RNG, which the trainer reseeds per epoch)."""

    def __init__(self, subjects: list[str], per_subject: int, random: bool) -> None:
        cfg = BrainPhantomConfig(voxel_mm=6.0)
        self.vols = [make_brain(s, 42, cfg) for s in subjects]
        self.per_subject, self.random = per_subject, random

    def __len__(self) -> int:
        return len(self.vols) * self.per_subject

    def __getitem__(self, i: int):
        b = self.vols[i // self.per_subject]
        shape = np.array(b.t1.shape)
        if self.random:
            lo = [np.random.randint(0, s - PATCH + 1) for s in shape]
        else:
            lo = (shape - PATCH) // 2
        sl = tuple(slice(a, a + PATCH) for a in lo)
        x = torch.from_numpy(b.t1[sl].copy())[None]
        y = torch.from_numpy((b.wm[sl] > 0.5).astype(np.float32))[None]
        return x, y


def model() -> nn.Module:
    return nn.Sequential(
        nn.Conv3d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Dropout3d(0.1),
        nn.Conv3d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv3d(8, 1, 1),
    )


def dice_metric(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return soft_dice((pred > 0).float(), target).mean(1)


def run(out_dir: str, epochs: int, patience: int = 0):
    cfg = TrainConfig(
        epochs=epochs, lr=3e-3, patience=patience, seed=7, device="cpu", grad_clip=1.0, threads=1
    )
    train = DataLoader(
        Patches(["sub-001", "sub-002", "sub-003"], 8, True), batch_size=4, shuffle=True
    )
    val = DataLoader(Patches(["sub-004"], 1, False), batch_size=1)
    trainer = Trainer(model, BCEDiceLoss(), cfg, out_dir, metric=Metric("dice", dice_metric))
    return trainer.fit(train, val)


if __name__ == "__main__":
    setup_logging()
    result = run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    print(result.history.drop(columns=["seconds", "samples_per_s"]).to_csv(sep="\t", index=False))
