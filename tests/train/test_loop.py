import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from voxflow.errors import VoxflowError
from voxflow.train.loop import Metric, TrainConfig, Trainer, load_weights, run_fingerprint

TINY = Path(__file__).with_name("tiny_training.py")


def _run_tiny(out_dir, epochs, patience=0, **popen):
    cmd = [sys.executable, str(TINY), str(out_dir), str(epochs), str(patience)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def _last_epoch(path: Path) -> int:
    try:
        return torch.load(path, weights_only=True)["epoch"]
    except Exception:
        return 0


@pytest.mark.slow
def test_sigkill_then_rerun_resumes_and_matches_uninterrupted(tmp_path):
    epochs = 40
    ref = _run_tiny(tmp_path / "ref", epochs)
    ref_out, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err

    killed_dir = tmp_path / "killed"
    proc = _run_tiny(killed_dir, epochs)
    deadline = time.time() + 240
    while _last_epoch(killed_dir / "checkpoint_last.pt") < 4:
        assert proc.poll() is None, proc.stderr.read()
        assert time.time() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = _last_epoch(killed_dir / "checkpoint_last.pt")
    assert 4 <= killed_at < epochs, "the kill must land mid-way"
    assert not (killed_dir / "model.pt").exists()  # outputs only appear at the end

    resumed = _run_tiny(killed_dir, epochs)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert f"resuming from {killed_dir / 'checkpoint_last.pt'} after epoch {killed_at}" in err
    assert f"epoch {killed_at + 1}/{epochs}" in err and "epoch 1/" not in err
    assert out == ref_out  # identical history: losses and val Dice of every epoch
    a = torch.load(tmp_path / "ref" / "model.pt", weights_only=True)
    b = torch.load(killed_dir / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)
    hist = pd.read_csv(killed_dir / "history.tsv", sep="\t")
    assert hist["epoch"].tolist() == list(range(1, epochs + 1))
    assert hist["val_dice"].iloc[-1] > 0.5  # it really learned WM from T1


# ---- fast in-process tests on a toy regression problem -------------------------------------


def _data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
    return [(x[i : i + 8], y[i : i + 8]) for i in range(0, n, 8)]


def _trainer(tmp_path, fingerprint="", **cfg):
    defaults = dict(epochs=5, lr=0.05, device="cpu", patience=0)
    return Trainer(
        lambda: nn.Linear(3, 1),
        nn.MSELoss(),
        TrainConfig(**{**defaults, **cfg}),
        tmp_path,
        metric=Metric("neg_mse", lambda p, t: -((p - t) ** 2).mean(1)),
        fingerprint=fingerprint,
    )


def test_fit_writes_outputs_and_learns(tmp_path):
    res = _trainer(tmp_path, epochs=30).fit(_data(), _data(seed=1))
    for name in ["model.pt", "history.tsv", "training_curve.png", "checkpoint_last.pt"]:
        assert (tmp_path / name).is_file()
    h = res.history
    assert list(h.columns) == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_neg_mse",
        "seconds",
        "samples_per_s",
        "lr",
    ]
    assert h["val_loss"].iloc[-1] < 0.1 * h["val_loss"].iloc[0]
    assert res.best_epoch == int(h["val_loss"].idxmin()) + 1
    model = load_weights(nn.Linear(3, 1), res.model_path)
    assert model.weight.detach()[0, 1] == pytest.approx(-2.0, abs=0.2)


def test_early_stopping_and_best_checkpoint(tmp_path):
    # val targets unrelated to train targets: val loss soon rises, patience stops the run
    val = [(x, -y) for x, y in _data(seed=1)]
    res = _trainer(tmp_path, epochs=50, patience=3).fit(_data(), val)
    assert res.stopped_early and len(res.history) == res.best_epoch + 3
    best = torch.load(tmp_path / "model.pt", weights_only=True)
    saved = torch.load(tmp_path / "checkpoint_best.pt", weights_only=True)
    assert torch.equal(best["weight"], saved["weight"])


def test_min_delta_counts_small_gains_as_no_improvement(tmp_path):
    res = _trainer(tmp_path, epochs=30, patience=2, min_delta=1e3).fit(_data(), _data(seed=1))
    assert res.stopped_early and res.best_epoch == 1 and len(res.history) == 3


def test_monitor_metric_max(tmp_path):
    t = Trainer(
        lambda: nn.Linear(3, 1),
        nn.MSELoss(),
        TrainConfig(epochs=3, device="cpu"),
        tmp_path,
        metric=Metric("neg_mse", lambda p, q: -((p - q) ** 2).mean(1)),
        monitor="val_neg_mse",
    )
    res = t.fit(_data(), _data(seed=1))
    assert res.best_value == res.history["val_neg_mse"].max()


@pytest.mark.parametrize("mode", ["global_norm", "per_parameter_norm", "value"])
def test_grad_clipping_limits_update(tmp_path, mode):
    free = _trainer(tmp_path / "a", epochs=1, lr=1.0, optimizer="sgd")
    clipped = _trainer(
        tmp_path / "b", epochs=1, lr=1.0, optimizer="sgd", grad_clip=1e-3, grad_clip_mode=mode
    )
    w0 = clipped.model.weight.detach().clone()
    assert torch.equal(w0, free.model.weight.detach())  # same seed, same init
    free.train_epoch(_data()[:1])
    clipped.train_epoch(_data()[:1])
    step_free = (free.model.weight.detach() - w0).abs().max()
    step_clip = (clipped.model.weight.detach() - w0).abs().max()
    assert step_clip < 0.01 * step_free


def test_weight_decay_shrinks_weights(tmp_path):
    zero_data = [(torch.randn(8, 3), torch.zeros(8, 1))]
    plain = _trainer(tmp_path / "a", epochs=1, lr=0.01, optimizer="sgd")
    decay = _trainer(tmp_path / "b", epochs=1, lr=0.01, optimizer="sgd", weight_decay=10.0)
    plain.train_epoch(zero_data)
    decay.train_epoch(zero_data)
    assert decay.model.weight.norm() < plain.model.weight.norm()


def test_bf16_amp_on_cpu_runs_and_fp16_refused(tmp_path):
    res = _trainer(tmp_path / "a", epochs=2, amp="bf16").fit(_data(), _data(seed=1))
    assert math.isfinite(res.best_value)
    with pytest.raises(VoxflowError, match="fp16 needs CUDA"):
        _trainer(tmp_path / "b", amp="fp16")


def test_changed_settings_start_fresh_but_more_epochs_resume(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    _trainer(tmp_path, epochs=2).fit(_data(), _data(seed=1))
    caplog.clear()
    res = _trainer(tmp_path, epochs=4).fit(_data(), _data(seed=1))
    assert "resuming" in caplog.text and res.history["epoch"].tolist() == [1, 2, 3, 4]
    caplog.clear()
    _trainer(tmp_path, epochs=4, lr=0.001).fit(_data(), _data(seed=1))
    assert "other settings; starting from scratch" in caplog.text


def test_checkpoint_of_other_inputs_is_not_resumed(tmp_path, caplog):
    data = tmp_path / "data.bin"
    data.write_bytes(b"cohort A")
    first = run_fingerprint([data], {"lr": 1})
    assert first == run_fingerprint([data], {"lr": 1}) != run_fingerprint([data], {"lr": 2})
    caplog.set_level(logging.INFO)
    _trainer(tmp_path / "run", first, epochs=2).fit(_data(), _data(seed=1))
    data.write_bytes(b"cohort B")  # same settings, regenerated data
    second = run_fingerprint([data], {"lr": 1})
    assert second != first
    caplog.clear()
    res = _trainer(tmp_path / "run", second, epochs=2).fit(_data(seed=2), _data(seed=1))
    assert "other inputs; starting from scratch" in caplog.text and "resuming" not in caplog.text
    assert "epoch 1/2" in caplog.text and len(res.history) == 2
    caplog.clear()
    _trainer(tmp_path / "run", second, epochs=3).fit(_data(seed=2), _data(seed=1))
    assert "resuming" in caplog.text


def test_finished_run_is_not_retrained(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    first = _trainer(tmp_path, epochs=3).fit(_data(), _data(seed=1))
    assert "epoch 1/3" in caplog.text
    caplog.clear()
    again = _trainer(tmp_path, epochs=3).fit(_data(), _data(seed=1))
    assert "resuming" in caplog.text and "epoch 1/3" not in caplog.text
    pd.testing.assert_frame_equal(first.history, again.history)


def test_nan_inputs_give_clear_error(tmp_path):
    bad = [(torch.full((4, 3), float("nan")), torch.zeros(4, 1))]
    with pytest.raises(VoxflowError, match="NaN"):
        _trainer(tmp_path).fit(bad, bad)


def test_empty_loader_and_config_errors(tmp_path):
    with pytest.raises(VoxflowError, match="training split empty"):
        _trainer(tmp_path).fit([], _data())
    with pytest.raises(VoxflowError, match="epocs"):
        TrainConfig.from_dict({"epocs": 3})
    with pytest.raises(VoxflowError, match="grad_clip_mode"):
        TrainConfig(grad_clip_mode="norm")
    with pytest.raises(VoxflowError, match="load_weights|not found"):
        load_weights(nn.Linear(3, 1), tmp_path / "none.pt")


def test_poly_lr_schedule_decays_per_epoch(tmp_path):
    res = _trainer(tmp_path, epochs=4, lr_schedule="poly").fit(_data(), _data(seed=1))
    expected = [0.05 * (1 - e / 4) ** 0.9 for e in range(4)]
    assert res.history["lr"].tolist() == pytest.approx(expected)
    const = _trainer(tmp_path / "c", epochs=2).fit(_data(), _data(seed=1))
    assert const.history["lr"].tolist() == [0.05, 0.05]
    with pytest.raises(VoxflowError, match="lr_schedule"):
        TrainConfig(lr_schedule="cosine")


class _Conv3dNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(1, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.is_contiguous(memory_format=self.expected)
        return self.conv(x).mean((1, 2, 3, 4))[:, None]


@pytest.mark.parametrize(
    ("memory_format", "layout"),
    [("auto", torch.channels_last_3d), ("contiguous", torch.contiguous_format)],
)
def test_memory_format_of_3d_models(tmp_path, memory_format, layout):
    """On CPU, auto trains 3D models in NDHWC (weights and inputs); contiguous keeps NCDHW."""
    _Conv3dNet.expected = layout
    data = [(torch.randn(2, 1, 4, 4, 4), torch.zeros(2, 1))]
    t = Trainer(
        _Conv3dNet,
        nn.MSELoss(),
        TrainConfig(epochs=1, device="cpu", memory_format=memory_format),
        tmp_path,
    )
    assert t.model.conv.weight.is_contiguous(memory_format=layout)
    t.fit(data, data)  # the model asserts the input layout
    with pytest.raises(VoxflowError, match="memory_format"):
        TrainConfig(memory_format="nhwc")


def test_keep_last_saves_the_final_epoch_even_when_it_is_not_the_best(tmp_path):
    # a learning rate too high: the loss grows, so the best epoch is the first
    res = _trainer(tmp_path, epochs=3, keep="last", lr=0.6).fit(_data(), _data(seed=1))
    assert res.best_epoch < 3
    saved = torch.load(res.model_path, weights_only=True)
    last = torch.load(tmp_path / "checkpoint_last.pt", weights_only=True)["model"]
    for k, v in saved.items():
        torch.testing.assert_close(v, last[k].cpu())
    with pytest.raises(VoxflowError, match="train.keep"):
        TrainConfig(keep="first")


# ---- truncated or corrupt checkpoints --------------------------------------------------------


def _corrupt(path: Path, how: str) -> bytes:
    """Damage the checkpoint at ``path`` the way a full disk, a bad copy or bit rot would."""
    data = path.read_bytes()
    if how == "truncated":
        bad = data[: len(data) // 2]
    elif how == "garbage":
        bad = torch.randint(0, 256, (len(data),), generator=torch.Generator().manual_seed(0))
        bad = bytes(bad.to(torch.uint8).tolist())
    elif how == "empty":
        bad = b""
    else:  # "missing_keys": a readable file that is not a whole last checkpoint
        state = torch.load(path, weights_only=True)
        del state["optimizer"], state["epoch"]
        torch.save(state, path)
        return path.read_bytes()
    path.write_bytes(bad)
    return bad


def _comparable(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns=["seconds", "samples_per_s"])


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "missing_keys"])
def test_corrupt_last_checkpoint_is_reported_moved_aside_and_training_restarts(
    tmp_path, caplog, how
):
    run = tmp_path / "run"
    # a first run on other data, so that resuming any of its state would change the result
    _trainer(run, epochs=3).fit(_data(seed=5), _data(seed=1))
    last = run / "checkpoint_last.pt"
    bad = _corrupt(last, how)
    caplog.set_level(logging.INFO)
    caplog.clear()
    res = _trainer(run, epochs=3).fit(_data(), _data(seed=1))

    warning = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warning) == 1, caplog.text
    msg = warning[0].getMessage()
    assert f"{last} is truncated or corrupt (" in msg
    assert "moved it aside to checkpoint_last.pt.corrupt and starting training from scratch" in msg
    assert "resuming" not in caplog.text and "epoch 1/3" in caplog.text
    assert (run / "checkpoint_last.pt.corrupt").read_bytes() == bad  # kept for inspection
    assert torch.load(last, weights_only=True)["epoch"] == 3  # a new, whole checkpoint

    ref = _trainer(tmp_path / "ref", epochs=3).fit(_data(), _data(seed=1))
    pd.testing.assert_frame_equal(_comparable(res.history), _comparable(ref.history))
    a = torch.load(res.model_path, weights_only=True)
    b = torch.load(ref.model_path, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_restart_after_corrupt_checkpoint_never_keeps_the_old_best(tmp_path):
    _trainer(tmp_path, epochs=2).fit(_data(), _data(seed=1))
    _corrupt(tmp_path / "checkpoint_last.pt", "truncated")
    nan_val = [(x, torch.full_like(y, float("nan"))) for x, y in _data(seed=1)]
    with pytest.raises(VoxflowError, match="no epoch improved"):
        _trainer(tmp_path, epochs=2).fit(_data(), nan_val)


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty"])
def test_unreadable_best_checkpoint_at_the_end_is_a_clear_error(tmp_path, how):
    _trainer(tmp_path, epochs=2).fit(_data(), _data(seed=1))
    _corrupt(tmp_path / "checkpoint_best.pt", how)
    with pytest.raises(VoxflowError) as err:  # the finished run only rewrites its outputs
        _trainer(tmp_path, epochs=2).fit(_data(), _data(seed=1))
    msg = str(err.value)
    assert msg.startswith(f"{tmp_path / 'checkpoint_best.pt'}: the best-epoch checkpoint is ")
    assert "rerun the training rule" in msg and "\n" not in msg


@pytest.mark.parametrize("how", ["truncated", "garbage", "empty", "list"])
def test_load_weights_of_corrupt_model_file_names_it(tmp_path, how):
    res = _trainer(tmp_path, epochs=1).fit(_data(), _data(seed=1))
    if how == "list":
        torch.save([1, 2, 3], res.model_path)
    else:
        _corrupt(res.model_path, how)
    with pytest.raises(VoxflowError) as err:
        load_weights(nn.Linear(3, 1), res.model_path)
    msg = str(err.value)
    assert msg.startswith(f"{res.model_path}: model weights are truncated or corrupt (")
    assert "rerun the training rule" in msg and "\n" not in msg
    assert "weights_only" not in msg  # not torch's advice to load untrusted pickles


def test_load_weights_into_another_model_names_the_file(tmp_path):
    res = _trainer(tmp_path, epochs=1).fit(_data(), _data(seed=1))
    with pytest.raises(VoxflowError, match=r"model\.pt: weights do not fit the configured model"):
        load_weights(nn.Linear(4, 1), res.model_path)


@pytest.mark.slow
def test_truncated_checkpoint_of_a_real_training_restarts_from_scratch(tmp_path):
    ref = _run_tiny(tmp_path, 3)
    ref_out, ref_err = ref.communicate(timeout=300)
    assert ref.returncode == 0, ref_err
    last = tmp_path / "checkpoint_last.pt"
    _corrupt(last, "truncated")
    rerun = _run_tiny(tmp_path, 3)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "WARNING" in err and f"{last} is truncated or corrupt (" in err
    assert "resuming" not in err and "epoch 1/3" in err
    assert out == ref_out  # the same history as the first, uninterrupted run


def test_checkpoint_that_fails_half_way_through_loading_leaves_the_initial_weights(
    tmp_path, caplog
):
    run = tmp_path / "run"
    _trainer(run, epochs=3).fit(_data(seed=5), _data(seed=1))
    state = torch.load(run / "checkpoint_last.pt", weights_only=True)
    state["epoch"] = 1  # resumable, but the optimizer state fits no optimizer of this model
    state["optimizer"] = {"state": {}, "param_groups": []}
    torch.save(state, run / "checkpoint_last.pt")
    caplog.set_level(logging.INFO)
    res = _trainer(run, epochs=3).fit(_data(), _data(seed=1))
    assert "does not match this model" in caplog.text and "epoch 1/3" in caplog.text
    ref = _trainer(tmp_path / "ref", epochs=3).fit(_data(), _data(seed=1))
    pd.testing.assert_frame_equal(_comparable(res.history), _comparable(ref.history))
