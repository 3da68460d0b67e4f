"""The one training loop for every study.

Device selection, per-epoch seeding, a constant or polynomially decaying learning rate,
optional AMP, train/val over any iterable of batches, early stopping (patience, min-delta) on a
monitored value, best and last checkpoints every epoch, resume from the last checkpoint after a
kill, gradient clipping, weight decay, a log line per epoch, a history TSV and a training-curve
PNG.

Files in ``out_dir``: ``checkpoint_last.pt`` and ``checkpoint_best.pt`` while training; at the end
``model.pt`` (the best epoch's weights, or with ``keep: last`` the last epoch's, a state dict),
``history.tsv`` and ``training_curve.png``, each written atomically. Checkpoints hold only
tensors and plain Python values (``torch.load(weights_only=True)``). An empty, truncated or
garbled ``checkpoint_last.pt`` is renamed to ``checkpoint_last.pt.corrupt`` with a warning and
training starts from scratch; an unreadable best checkpoint or ``model.pt`` is a one-line
:class:`~voxflow.errors.VoxflowError` naming the file.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import os
import pickle
import time
import zipfile
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from voxflow.errors import VoxflowError, input_error
from voxflow.io.atomic import write_bytes_atomic
from voxflow.io.tables import write_tsv
from voxflow.seeding import derive_seed
from voxflow.train.device import configure_determinism, seed_everything, select_device

log = logging.getLogger(__name__)

# Config fields that may change between a killed run and its resumption.
RESUMABLE_CHANGES = {"epochs", "device", "threads", "memory_format", "keep"}
# Keys every last checkpoint holds (see Trainer._state); one without them is treated as corrupt.
CHECKPOINT_KEYS = (
    "model",
    "optimizer",
    "scaler",
    "epoch",
    "best_value",
    "best_epoch",
    "bad_epochs",
    "history",
    "config",
)
# What torch.load raises for an empty, truncated or garbled file (a cut zip gives OSError EINVAL,
# garbage bytes UnpicklingError, an empty file EOFError, a cut legacy pickle Key/IndexError).
LOAD_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    LookupError,
    pickle.UnpicklingError,
    zipfile.BadZipFile,
)


@dataclass
class TrainConfig:
    """Settings of one training run (the ``train:`` block of a study's config)."""

    epochs: int = 100
    lr: float = 1e-4
    lr_schedule: str = "constant"
    optimizer: str = "adam"
    weight_decay: float = 0.0
    patience: int = 5
    min_delta: float = 0.0
    grad_clip: float = 0.0
    grad_clip_mode: str = "global_norm"
    amp: str = "off"
    memory_format: str = "auto"
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    keep: str = "best"

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise VoxflowError(f"train.optimizer: '{self.optimizer}' not one of adam, adamw, sgd")
        if self.grad_clip_mode not in ("global_norm", "per_parameter_norm", "value"):
            raise VoxflowError(
                f"train.grad_clip_mode: '{self.grad_clip_mode}' not one of "
                "global_norm, per_parameter_norm, value"
            )
        if self.amp not in ("off", "fp16", "bf16"):
            raise VoxflowError(f"train.amp: '{self.amp}' not one of off, fp16, bf16")
        if self.lr_schedule not in ("constant", "poly"):
            raise VoxflowError(f"train.lr_schedule: '{self.lr_schedule}' not one of constant, poly")
        if self.memory_format not in ("auto", "channels_last", "contiguous"):
            raise VoxflowError(
                f"train.memory_format: '{self.memory_format}' not one of "
                "auto, channels_last, contiguous"
            )
        if self.epochs < 1:
            raise VoxflowError(f"train.epochs: {self.epochs} must be >= 1")
        if self.keep not in ("best", "last"):
            raise VoxflowError(f"train.keep: '{self.keep}' not one of best, last")

    @classmethod
    def from_dict(cls, d: dict[str, Any], **overrides: Any) -> TrainConfig:
        """Build from a config block; unknown keys are an error that names them."""
        names = {f.name for f in fields(cls)}
        merged = {**d, **overrides}
        unknown = sorted(set(merged) - names)
        if unknown:
            raise VoxflowError(f"train: unknown key(s) {unknown}; allowed {sorted(names)}")
        return cls(**merged)


class Metric:
    """Streaming validation metric: mean over samples of ``fn(pred, target) -> (B,)`` values."""

    def __init__(self, name: str, fn: Callable[..., torch.Tensor], mode: str = "max") -> None:
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.name, self.fn, self.mode = name, fn, mode
        self.reset()

    def reset(self) -> None:
        self.total, self.count = 0.0, 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        values = self.fn(pred, target).detach().double().reshape(-1)
        self.total += float(values.sum())
        self.count += values.numel()

    def compute(self) -> float:
        return self.total / self.count if self.count else math.nan


@dataclass
class TrainResult:
    """What a finished fit returns."""

    history: pd.DataFrame
    best_epoch: int
    best_value: float
    model_path: Path
    stopped_early: bool


def default_batch(batch: Any) -> tuple[torch.Tensor, ...]:
    """Batches are ``(inputs, targets, *extra)`` tuples; extra tensors go to the loss."""
    if isinstance(batch, dict):
        raise VoxflowError("dict batches need a batch_fn that returns (inputs, targets, ...)")
    return tuple(batch)


def run_fingerprint(files: Iterable[str | Path], settings: Any = None) -> str:
    """SHA-256 over the contents of ``files`` (in the given order) and JSON of ``settings``.

    Passed to :class:`Trainer` so that a checkpoint left by a run on other data (a changed
    cohort, split or preprocessing) is never resumed."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for f in files:
        h.update(str(f).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _save(obj: Any, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes_atomic(path, buf.getvalue())


class UnreadableCheckpoint(Exception):
    """A checkpoint file that is empty, truncated or corrupt; the message says why."""


def _load_error_reason(err: BaseException) -> str:
    """A short reason for a ``torch.load`` failure (torch's own messages run to paragraphs and
    advise ``weights_only=False``, which would be wrong here)."""
    text = str(err)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation")[0]
    text = " ".join(text.split()).split(". ")[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def read_checkpoint(path: Path, map_location: Any = "cpu", keys: Sequence[str] = ()) -> Any:
    """``torch.load(path, weights_only=True)``; an empty, truncated or garbled file, or a dict
    without all of ``keys``, raises :class:`UnreadableCheckpoint`. With no ``keys`` the content
    must be a state dict (a dict)."""
    if path.stat().st_size == 0:
        raise UnreadableCheckpoint("the file is empty")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except LOAD_ERRORS as err:
        raise UnreadableCheckpoint(_load_error_reason(err)) from err
    if not isinstance(obj, dict):
        raise UnreadableCheckpoint(f"holds a {type(obj).__name__}, not a dict")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise UnreadableCheckpoint(f"lacks {', '.join(missing)}")
    return obj


class Trainer:
    """Train a model with ``loss_fn`` under ``cfg``, writing checkpoints and outputs to ``out_dir``.

    ``model_fn`` builds the network; it is called after seeding, so initial weights follow the
    config's seed. ``fingerprint`` identifies the data and study settings (see
    :func:`run_fingerprint`): a last checkpoint written under another fingerprint is not resumed.
    ``monitor`` is ``"val_loss"`` (lower is better) or ``val_<metric name>``
    (the metric's ``mode``).
    """

    def __init__(
        self,
        model_fn: Callable[[], nn.Module],
        loss_fn: nn.Module,
        cfg: TrainConfig,
        out_dir: str | Path,
        metric: Metric | None = None,
        monitor: str = "val_loss",
        batch_fn: Callable[[Any], Sequence[torch.Tensor]] = default_batch,
        fingerprint: str = "",
    ) -> None:
        self.cfg = cfg
        self.fingerprint = fingerprint
        self.out_dir = Path(out_dir)
        self.metric = metric
        if monitor != "val_loss" and (metric is None or monitor != f"val_{metric.name}"):
            raise VoxflowError(f"monitor '{monitor}' must be val_loss or val_<metric name>")
        self.monitor = monitor
        self.mode = "min" if monitor == "val_loss" else metric.mode  # type: ignore[union-attr]
        self.batch_fn = batch_fn
        self.device = select_device(cfg.device)
        configure_determinism(self.device, cfg.threads or None)
        if cfg.amp == "fp16" and self.device.type != "cuda":
            raise VoxflowError("train.amp: fp16 needs CUDA; use bf16 on CPU, or off")
        if cfg.amp == "bf16" and self.device.type == "cpu":
            cap = torch.backends.cpu.get_cpu_capability()
            if "BF16" not in cap.upper() and "AMX" not in cap.upper():
                log.warning(
                    "train.amp: bf16 on a CPU without native bf16 (%s) makes 3D "
                    "convolutions many times slower; consider amp: off",
                    cap,
                )
        seed_everything(derive_seed(cfg.seed, "init"))
        self.model = model_fn().to(self.device)
        # NDHWC for 3D convolutions: faster with oneDNN on CPU and with cuDNN under AMP
        self.channels_last = (
            cfg.memory_format == "channels_last"
            or (cfg.memory_format == "auto" and (self.device.type == "cpu" or cfg.amp != "off"))
        ) and any(p.dim() == 5 for p in self.model.parameters())
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last_3d)
        self.loss_fn = loss_fn.to(self.device)
        self.optimizer = self._make_optimizer()
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16")
        self.paths = {
            "last": self.out_dir / "checkpoint_last.pt",
            "best": self.out_dir / "checkpoint_best.pt",
            "model": self.out_dir / "model.pt",
            "history": self.out_dir / "history.tsv",
            "curve": self.out_dir / "training_curve.png",
        }

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = [p for p in self.model.parameters() if p.requires_grad]
        c = self.cfg
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=c.lr, weight_decay=c.weight_decay)
        if c.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.SGD(params, lr=c.lr, momentum=0.9, weight_decay=c.weight_decay)

    def _autocast(self):
        if self.cfg.amp == "off":
            return nullcontext()
        dtype = torch.float16 if self.cfg.amp == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    def _to_device(self, batch: Any) -> list[torch.Tensor]:
        tensors = [t.to(self.device, non_blocking=True) for t in self.batch_fn(batch)]
        if self.channels_last and tensors[0].dim() == 5:
            tensors[0] = tensors[0].contiguous(memory_format=torch.channels_last_3d)
        return tensors

    def lr_at(self, epoch: int) -> float:
        """Learning rate of ``epoch`` (1-based): constant, or nnU-Net's polynomial decay
        lr * (1 - (epoch - 1) / epochs) ** 0.9."""
        c = self.cfg
        if c.lr_schedule == "constant":
            return c.lr
        return c.lr * (1 - (epoch - 1) / c.epochs) ** 0.9

    def _clip(self) -> None:
        c = self.cfg
        if c.grad_clip <= 0:
            return
        self.scaler.unscale_(self.optimizer)
        params = [p for p in self.model.parameters() if p.grad is not None]
        if c.grad_clip_mode == "global_norm":
            nn.utils.clip_grad_norm_(params, c.grad_clip)
        elif c.grad_clip_mode == "per_parameter_norm":
            for p in params:
                nn.utils.clip_grad_norm_([p], c.grad_clip)
        else:
            nn.utils.clip_grad_value_(params, c.grad_clip)

    def train_epoch(self, loader: Iterable) -> tuple[float, int]:
        """One pass over ``loader``; returns (mean loss per sample, number of samples)."""
        self.model.train()
        total, n = 0.0, 0
        for batch in loader:
            x, y, *extra = self._to_device(batch)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                pred = self.model(x)
            loss = self.loss_fn(pred.float(), y, *extra)
            if not torch.isfinite(loss):
                raise VoxflowError(
                    f"training loss became {loss.item()} (NaN/inf); check the inputs for NaNs "
                    "or lower train.lr / enable train.grad_clip"
                )
            self.scaler.scale(loss).backward()
            self._clip()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total += float(loss.detach()) * x.shape[0]
            n += x.shape[0]
        if n == 0:
            raise VoxflowError(
                "the training loader yielded no batches; is the training split empty?"
            )
        return total / n, n

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> tuple[float, float]:
        """Mean validation loss per sample and the metric (NaN without one)."""
        self.model.eval()
        if self.metric:
            self.metric.reset()
        total, n = 0.0, 0
        for batch in loader:
            x, y, *extra = self._to_device(batch)
            with self._autocast():
                pred = self.model(x)
            pred = pred.float()
            total += float(self.loss_fn(pred, y, *extra)) * x.shape[0]
            n += x.shape[0]
            if self.metric:
                self.metric.update(pred, y)
        if n == 0:
            raise VoxflowError("the validation loader yielded no batches; is the val split empty?")
        return total / n, (self.metric.compute() if self.metric else math.nan)

    def _improved(self, value: float, best: float) -> bool:
        if math.isnan(value):
            return False
        if math.isnan(best):
            return True
        d = self.cfg.min_delta
        return value < best - d if self.mode == "min" else value > best + d

    def _state(self, epoch: int, best: float, best_epoch: int, bad: int, history: list):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "best_value": best,
            "best_epoch": best_epoch,
            "bad_epochs": bad,
            "history": history,
            "config": asdict(self.cfg),
            "fingerprint": self.fingerprint,
        }

    def _try_resume(self) -> dict | None:
        """The last checkpoint's state, loaded into model, optimizer and scaler; ``None`` (a
        fresh start, with the initial weights) if there is none or it cannot be resumed. A
        corrupt one is renamed to ``<name>.corrupt`` (kept for inspection) with a warning."""
        path = self.paths["last"]
        if not path.is_file():
            return None
        try:
            state = read_checkpoint(path, self.device, CHECKPOINT_KEYS)
        except UnreadableCheckpoint as err:
            aside = path.with_name(path.name + ".corrupt")
            os.replace(path, aside)
            log.warning(
                "%s is truncated or corrupt (%s); moved it aside to %s and starting training "
                "from scratch",
                path,
                err,
                aside.name,
            )
            return None
        old = {k: v for k, v in state["config"].items() if k not in RESUMABLE_CHANGES}
        new = {k: v for k, v in asdict(self.cfg).items() if k not in RESUMABLE_CHANGES}
        if old != new:
            log.warning("%s was written with other settings; starting from scratch", path)
            return None
        if state.get("fingerprint", "") != self.fingerprint:
            log.warning("%s was written for other inputs; starting from scratch", path)
            return None
        # a load that fails half-way must not leave some resumed weights in a fresh start
        initial = (
            {k: v.clone() for k, v in self.model.state_dict().items()},
            copy.deepcopy(self.optimizer.state_dict()),
            self.scaler.state_dict(),
        )
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError, TypeError) as err:
            self.model.load_state_dict(initial[0])
            self.optimizer.load_state_dict(initial[1])
            self.scaler.load_state_dict(initial[2])
            log.warning("%s does not match this model (%s); starting from scratch", path, err)
            return None
        return state

    def fit(self, train_loader: Iterable, val_loader: Iterable) -> TrainResult:
        """Train until ``epochs`` or early stopping; resumes from ``checkpoint_last.pt``."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg
        history: list[dict[str, float]] = []
        best, best_epoch, bad, start = math.nan, 0, 0, 1
        state = self._try_resume()
        if state is None:  # a best checkpoint of an abandoned run must not become the model
            self.paths["best"].unlink(missing_ok=True)
        else:
            history = list(state["history"])
            best, best_epoch, bad = state["best_value"], state["best_epoch"], state["bad_epochs"]
            start = state["epoch"] + 1
            log.info(
                "resuming from %s after epoch %d (best %s %.6g at epoch %d)",
                self.paths["last"],
                state["epoch"],
                self.monitor,
                best,
                best_epoch,
            )
        # a finished run goes on only if epochs were raised and it did not stop early
        stopped_early = cfg.patience > 0 and bad >= cfg.patience
        for epoch in range(start, cfg.epochs + 1):
            if stopped_early:
                break
            seed_everything(derive_seed(cfg.seed, "epoch", epoch))
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(epoch)
            t0 = time.perf_counter()
            train_loss, n = self.train_epoch(train_loader)
            t_train = time.perf_counter() - t0
            val_loss, val_metric = self.evaluate(val_loader)
            seconds = time.perf_counter() - t0
            row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
            if self.metric:
                row[f"val_{self.metric.name}"] = val_metric
            row.update(
                seconds=seconds,
                samples_per_s=n / max(t_train, 1e-9),
                lr=self.optimizer.param_groups[0]["lr"],
            )
            history.append(row)
            value = row[self.monitor]
            improved = self._improved(value, best)
            if improved:
                best, best_epoch, bad = value, epoch, 0
                _save(self.model.state_dict(), self.paths["best"])
            else:
                bad += 1
            stopped_early = cfg.patience > 0 and bad >= cfg.patience
            _save(self._state(epoch, best, best_epoch, bad, history), self.paths["last"])
            metric_txt = f" val_{self.metric.name} {val_metric:.4f}" if self.metric else ""
            log.info(
                "epoch %d/%d train_loss %.4f val_loss %.4f%s %.1fs %.1f samples/s%s",
                epoch,
                cfg.epochs,
                train_loss,
                val_loss,
                metric_txt,
                seconds,
                row["samples_per_s"],
                " *best*" if improved else "",
            )
            if stopped_early:
                log.info(
                    "early stopping: no %s improvement > %g for %d epochs",
                    self.monitor,
                    cfg.min_delta,
                    cfg.patience,
                )
        return self._finish(history, best, best_epoch, stopped_early)

    def _finish(self, history: list, best: float, best_epoch: int, stopped: bool) -> TrainResult:
        from voxflow.evaluate.plots import plot_training_curves

        if self.cfg.keep == "last":  # a fixed schedule: the model after the last epoch
            kept = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        elif not self.paths["best"].is_file():
            raise VoxflowError(
                f"{self.out_dir}: no epoch improved {self.monitor} (all NaN?); no model to save"
            )
        else:
            try:
                kept = read_checkpoint(self.paths["best"])
                self.model.load_state_dict(kept)
            except (UnreadableCheckpoint, RuntimeError) as err:
                reason = " ".join(str(err).split())
                raise input_error(
                    self.paths["best"],
                    f"the best-epoch checkpoint is unreadable ({reason})",
                    f"Delete {self.paths['best'].name} and {self.paths['last'].name} in "
                    f"{self.out_dir} and rerun the training rule to train again",
                ) from err
        _save(kept, self.paths["model"])
        df = pd.DataFrame(history)
        write_tsv(df, self.paths["history"])
        if self.cfg.keep == "last" and len(df):
            kept, marker = int(df["epoch"].iloc[-1]), "kept (last epoch)"
        else:
            kept, marker = best_epoch, None
        plot_training_curves(df, self.paths["curve"], self.monitor, kept, marker)
        log.info(
            "best %s %.6g at epoch %d -> %s", self.monitor, best, best_epoch, self.paths["model"]
        )
        return TrainResult(df, best_epoch, best, self.paths["model"], stopped)


def load_weights(
    model: nn.Module, path: str | Path, device: str | torch.device = "cpu"
) -> nn.Module:
    """Load a ``model.pt`` state dict safely (``weights_only=True``) into ``model``; a missing,
    corrupt or mismatched file is a :class:`VoxflowError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise VoxflowError(f"{path}: model weights not found; run the training rule first")
    hint = "Delete it and rerun the training rule that writes it"
    try:
        weights = read_checkpoint(path, device)
    except UnreadableCheckpoint as err:
        raise input_error(path, f"model weights are truncated or corrupt ({err})", hint) from err
    try:
        model.load_state_dict(weights)
    except RuntimeError as err:
        reason = " ".join(str(err).split())
        raise input_error(
            path, f"weights do not fit the configured model ({reason})", hint
        ) from err
    return model
