"""Bayesian optimisation of design variables: resumable, and safe for parallel workers.

The ``l3`` study tunes a classifier's 7 design variables (:data:`SEARCH_SPACE`, the paper's list)
by Gaussian-process Bayesian optimisation (Optuna's ``GPSampler``) of an objective such as
1/F1 on an inner validation split. The ``control`` arm searches only the first 5 variables and
fixes the other two (:data:`CONTROL_FIXED`: no over-sampling, equal class weights).

Storage. One study per (arm, fold) lives in one Optuna *journal* file
(``JournalStorage(JournalFileBackend(path, lock_obj=JournalFileSymlinkLock(path)))``): an
append-only log of operations that every process replays, written under a file lock. Optuna
documents it as the storage for multi-process and multi-node optimisation over a shared (NFS)
filesystem, where SQLite is unsafe because ``fcntl()`` locking is broken on many NFS servers. The
lock is ``JournalFileSymlinkLock`` (Optuna's default): an atomic ``symlink()`` that works on
NFSv2 and later (``JournalFileOpenLock``'s ``O_EXCL`` needs NFSv3+); a lock left by a killed
writer is forcibly released after :data:`LOCK_GRACE_S` seconds without progress. optuna-dashboard
opens the journal file directly. Besides ``<path>`` the directory holds ``<path>.ask`` (an empty
target for the ask lock below) and, transiently, ``<path>.lock`` / ``<path>.ask.lock``.

Workers. Snakemake job ``worker`` (0..N-1) calls :func:`run_worker`; N jobs may share one study.
Every trial a worker starts carries the user attribute ``worker``. Starting a trial ("is there
budget left?" + ``ask``) happens under a second file lock, so the study never holds more
COMPLETE + RUNNING trials than the budget and ends with exactly ``n_trials`` COMPLETE trials.
A worker that finds the budget taken (complete, or in flight in other workers) returns; the
study is finished once every worker job has succeeded.

Resume. A killed job (SIGKILL) leaves its trial RUNNING. When the same job is rerun,
:func:`recover` marks that trial FAIL and re-enqueues its parameters (user attribute
``retry_of``), so the next trial redoes them; RUNNING trials of *other* workers may be alive and
are left alone.

Determinism. With one worker and a deterministic objective, two fresh runs with the same seed
give identical trials (the sampler seed is derived from ``seed``, the study name and the worker).
Parallel tuning (N > 1 workers) is not bit-reproducible: which worker asks next, and so which
trials each sampler has seen, depends on timing. A resumed study is not bit-identical to an
uninterrupted one either (the GP's kernel-fit cache and the sampler's RNG restart).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from voxflow.errors import VoxflowError
from voxflow.seeding import derive_seed

log = logging.getLogger(__name__)

# The paper's 7 design variables, in its order.
SEARCH_SPACE: dict[str, BaseDistribution] = {
    "l2": FloatDistribution(1e-5, 1e-2, log=True),
    "lr": FloatDistribution(1e-5, 1e-2, log=True),
    "batch_size": IntDistribution(16, 64, step=16),
    "grad_threshold": IntDistribution(1, 6),
    "grad_method": CategoricalDistribution(["l2norm", "global-l2norm"]),
    "oversampling": FloatDistribution(0.0, 0.25),
    "class_weight": FloatDistribution(0.0, 1.0),
}
_NAMES = tuple(SEARCH_SPACE)
ARMS: dict[str, tuple[str, ...]] = {"proposed": _NAMES, "control": _NAMES[:5]}
# The control arm: no over-sampling, equal class weights.
CONTROL_FIXED: dict[str, float] = {"oversampling": 0.0, "class_weight": 0.0}

SAMPLERS = ("gp", "tpe", "random")
# Seconds without progress after which a lock file left by a killed process is removed.
LOCK_GRACE_S = 30
# How often the parameters of a killed trial are redone before they are given up.
MAX_RETRIES = 3
# A RUNNING trial without a ``worker`` attribute (its process died between creating it and
# tagging it, a few milliseconds) is treated as dead once it is this old.
UNTAGGED_STALE_S = 600.0


# ---------------------------------------------------------------------------- search space


def _check_arm(arm: str) -> None:
    if arm not in ARMS:
        raise VoxflowError(f"tune arm '{arm}': not one of {', '.join(ARMS)}")


def _override(name: str, dist: BaseDistribution, bounds: Any) -> BaseDistribution:
    """A copy of ``dist`` with new bounds (``[low, high]`` or ``[low, high, step]``) or choices."""
    where = f"search-space override '{name}'"
    if not isinstance(bounds, Sequence) or isinstance(bounds, str):
        raise VoxflowError(f"{where}: expected a list, got {bounds!r}")
    try:
        if isinstance(dist, CategoricalDistribution):
            if len(bounds) == 0:
                raise ValueError("needs at least one choice")
            return CategoricalDistribution(list(bounds))
        if isinstance(dist, IntDistribution):
            if len(bounds) not in (2, 3):
                raise ValueError("expected [low, high] or [low, high, step]")
            ints = [int(b) for b in bounds]
            if any(i != b for i, b in zip(ints, bounds, strict=True)):
                raise ValueError("bounds must be integers")
            low, high = ints[:2]
            step = ints[2] if len(ints) == 3 else dist.step
            if high < low or (high - low) % step:
                raise ValueError(f"needs low <= high and high - low a multiple of step {step}")
            return IntDistribution(low, high, log=dist.log, step=step)
        assert isinstance(dist, FloatDistribution)
        if len(bounds) != 2:
            raise ValueError("expected [low, high]")
        low, high = (float(b) for b in bounds)
        return FloatDistribution(low, high, log=dist.log, step=dist.step)
    except (TypeError, ValueError) as err:
        raise VoxflowError(f"{where}: {bounds!r} is not valid ({err})") from err


def search_space(
    arm: str, overrides: Mapping[str, Any] | None = None
) -> dict[str, BaseDistribution]:
    """The distributions searched in ``arm``, with ``overrides`` (name -> new bounds) applied.

    Overrides shrink ranges for a demo but keep the variables; one naming a variable the arm
    does not search (e.g. ``class_weight`` in ``control``) is ignored.
    """
    _check_arm(arm)
    space = {name: SEARCH_SPACE[name] for name in ARMS[arm]}
    for name, bounds in (overrides or {}).items():
        if name not in SEARCH_SPACE:
            raise VoxflowError(
                f"search-space override '{name}': not a design variable; "
                f"use one of {', '.join(SEARCH_SPACE)}"
            )
        if name in space:
            space[name] = _override(name, space[name], bounds)
    return space


def suggest(trial: optuna.trial.BaseTrial, space: Mapping[str, BaseDistribution]) -> dict:
    """Draw every variable of ``space`` through the trial's public ``suggest_*`` methods."""
    params: dict[str, Any] = {}
    for name, dist in space.items():
        if isinstance(dist, FloatDistribution):
            params[name] = trial.suggest_float(
                name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        elif isinstance(dist, IntDistribution):
            params[name] = trial.suggest_int(
                name, dist.low, dist.high, step=dist.step, log=dist.log
            )
        elif isinstance(dist, CategoricalDistribution):
            params[name] = trial.suggest_categorical(name, list(dist.choices))
        else:  # pragma: no cover - SEARCH_SPACE holds only the three kinds above
            raise TypeError(f"{name}: unsupported distribution {dist!r}")
    return params


def full_params(arm: str, params: Mapping[str, Any]) -> dict:
    """All 7 design variables: ``params`` plus the fixed values of the control arm."""
    _check_arm(arm)
    merged = {**params, **(CONTROL_FIXED if arm == "control" else {})}
    order = [n for n in SEARCH_SPACE if n in merged] + [n for n in merged if n not in SEARCH_SPACE]
    return {name: merged[name] for name in order}


# ---------------------------------------------------------------------------- sampler, storage


def make_sampler(
    name: str, seed: int, n_startup_trials: int | None = None
) -> optuna.samplers.BaseSampler:
    """``gp`` (Gaussian-process BO, the paper's method), ``tpe`` or ``random``.

    ``n_startup_trials`` (random trials before the model is used) defaults to Optuna's 10.
    ``GPSampler`` assumes a noisy objective (``deterministic_objective`` stays off: training is
    noisy, and the flag is experimental).
    """
    startup = {} if n_startup_trials is None else {"n_startup_trials": int(n_startup_trials)}
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, **startup)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, **startup)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise VoxflowError(f"tune sampler '{name}': not one of {', '.join(SAMPLERS)}")


def open_study(
    path: str | Path,
    study_name: str,
    sampler: optuna.samplers.BaseSampler | None,
    direction: str = "minimize",
) -> optuna.Study:
    """Create or load ``study_name`` in the journal file ``path`` (parent folder created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        backend = JournalFileBackend(
            str(path), lock_obj=JournalFileSymlinkLock(str(path), grace_period=LOCK_GRACE_S)
        )
        return optuna.create_study(
            storage=JournalStorage(backend),
            study_name=study_name,
            sampler=sampler,
            direction=direction,
            load_if_exists=True,
        )
    except (ValueError, KeyError) as err:
        raise VoxflowError(
            f"{path}: cannot open study '{study_name}' ({err}). If the file is not an Optuna "
            "journal or is corrupt, move it aside to start the study afresh"
        ) from err


@contextmanager
def _ask_lock(path: Path) -> Iterator[None]:
    """Cross-process (NFS-safe) lock around "is there budget left?" + ``ask``."""
    target = Path(f"{path}.ask")
    target.touch(exist_ok=True)
    lock = JournalFileSymlinkLock(str(target), grace_period=LOCK_GRACE_S)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _space_json(space: Mapping[str, BaseDistribution]) -> dict[str, str]:
    return {name: distribution_to_json(dist) for name, dist in space.items()}


def _check_study_space(
    study: optuna.Study, path: Path, arm: str, space: Mapping[str, BaseDistribution]
) -> None:
    """Record arm and search space in a new study; refuse to continue one made with others."""
    attrs = study.user_attrs
    expected = _space_json(space)
    if "search_space" not in attrs:
        study.set_user_attr("arm", arm)
        study.set_user_attr("search_space", expected)
        return
    if attrs.get("arm") != arm or attrs["search_space"] != expected:
        raise VoxflowError(
            f"{path}: study '{study.study_name}' was started for arm '{attrs.get('arm')}' with "
            f"search space {attrs['search_space']}, not arm '{arm}' with {expected}. Use the "
            "same arm and space overrides, or move the file aside to start afresh"
        )


# ---------------------------------------------------------------------------- resume, run


def recover(
    study: optuna.Study, worker: int, untagged_stale_s: float = UNTAGGED_STALE_S
) -> list[int]:
    """Fail this worker's RUNNING trials (left by a killed run) and re-enqueue their parameters.

    Only trials whose ``worker`` attribute equals ``worker`` are touched (other workers' RUNNING
    trials may be alive), plus untagged RUNNING trials older than ``untagged_stale_s``. Each
    failed trial's parameters are enqueued with ``retry_of`` (its number), at most
    :data:`MAX_RETRIES` times in a chain. Returns the numbers of the trials marked FAIL.
    """
    failed: list[int] = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker")
        if owner is None:
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - started < untagged_stale_s:
                continue
        elif owner != worker:
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except (ValueError, UpdateFinishedTrialError):
            continue  # finished meanwhile by another process
        failed.append(trial.number)
        retry = int(trial.user_attrs.get("retry", 0)) + 1
        params = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
        if not params:
            log.warning("trial %d (worker %s) died before drawing parameters", trial.number, owner)
        elif retry > MAX_RETRIES:
            log.warning(
                "trial %d (worker %s) died; its parameters were tried %d times, not retrying: %s",
                trial.number, owner, retry, params,
            )  # fmt: skip
        else:
            study.enqueue_trial(
                params, user_attrs={"retry_of": trial.number, "retry": retry}, skip_if_exists=False
            )
            log.info(
                "trial %d (worker %s) was left RUNNING by a killed run: FAIL, requeued %s",
                trial.number, owner, params,
            )  # fmt: skip
    return failed


def _counts(study: optuna.Study) -> tuple[int, int]:
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    return complete, len(trials) - complete


def _requeue(study: optuna.Study, frozen: FrozenTrial) -> None:
    """Enqueue the parameters of an interrupted trial again."""
    params = {**frozen.system_attrs.get("fixed_params", {}), **frozen.params}
    retry = int(frozen.user_attrs.get("retry", 0)) + 1
    if params and retry <= MAX_RETRIES:
        study.enqueue_trial(params, user_attrs={"retry_of": frozen.number, "retry": retry})


def run_worker(
    path: str | Path,
    study_name: str,
    objective: Callable[[dict], float],
    arm: str,
    n_trials: int,
    worker: int = 0,
    sampler: str = "gp",
    seed: int = 0,
    space_overrides: Mapping[str, Any] | None = None,
    n_startup_trials: int | None = None,
    catch: tuple[type[BaseException], ...] = (),
) -> optuna.Study:
    """Run trials of ``study_name`` in ``path`` until it holds ``n_trials`` COMPLETE trials.

    ``objective`` gets all 7 design variables (:func:`full_params`) and returns the value to
    minimise. The budget counts COMPLETE trials of all workers; a worker returns once every
    remaining slot is complete or in flight elsewhere. An objective exception marks the trial
    FAIL and is re-raised, unless it is an instance of ``catch`` (then the next trial starts;
    ``max(3, n_trials)`` failures in a row raise). Ctrl-C also requeues the trial's parameters.
    """
    path = Path(path)
    space = search_space(arm, space_overrides)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials < 1:
        raise VoxflowError(f"{path}: n_trials must be a positive integer, got {n_trials!r}")
    if isinstance(worker, bool) or not isinstance(worker, int) or worker < 0:
        raise VoxflowError(f"{path}: worker must be an integer >= 0, got {worker!r}")
    sampler_obj = make_sampler(
        sampler, derive_seed(seed, "tune", study_name, worker), n_startup_trials
    )
    study = open_study(path, study_name, sampler_obj)
    _check_study_space(study, path, arm, space)
    recover(study, worker)

    failures_in_row = 0
    max_failures = max(3, n_trials)
    while True:
        with _ask_lock(path):
            complete, running = _counts(study)
            if complete + running >= n_trials:
                break
            trial = study.ask()
            trial.set_user_attr("worker", worker)
        start = time.monotonic()
        try:
            params = full_params(arm, suggest(trial, space))
            value = float(objective(params))
        except catch as err:
            study.tell(trial, state=TrialState.FAIL)
            failures_in_row += 1
            log.warning(
                "%s trial %d (worker %d) failed: %s: %s",
                study_name, trial.number, worker, type(err).__name__, err,
            )  # fmt: skip
            if failures_in_row >= max_failures:
                raise VoxflowError(
                    f"{path}: study '{study_name}': {failures_in_row} trials in a row failed "
                    f"(last: {type(err).__name__}: {err}). Fix the objective or the search space"
                ) from err
            continue
        except KeyboardInterrupt:
            _requeue(study, study.tell(trial, state=TrialState.FAIL))
            raise
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        if math.isnan(value):
            study.tell(trial, state=TrialState.FAIL)
            failures_in_row += 1
            log.warning(
                "%s trial %d (worker %d): objective is NaN", study_name, trial.number, worker
            )
            if failures_in_row >= max_failures:
                raise VoxflowError(
                    f"{path}: study '{study_name}': {failures_in_row} trials in a row failed "
                    "(objective NaN). Fix the objective or the search space"
                )
            continue
        study.tell(trial, value)
        failures_in_row = 0
        retry = trial.user_attrs.get("retry_of")
        log.info(
            "%s trial %d (worker %d%s): value %.6g in %.1f s, params %s",
            study_name, trial.number, worker,
            "" if retry is None else f", retry of {retry}",
            value, time.monotonic() - start, params,
        )  # fmt: skip

    log.info(
        "%s: %d of %d trials COMPLETE, %d running in other workers; worker %d done",
        study_name, complete, n_trials, running, worker,
    )  # fmt: skip
    return study


# ---------------------------------------------------------------------------- results


def best_params(study: optuna.Study, arm: str) -> dict:
    """All 7 design variables of the best COMPLETE trial (fixed ones included)."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise VoxflowError(
            f"study '{study.study_name}': no COMPLETE trial yet. Run the tuning jobs first"
        )
    return full_params(arm, study.best_trial.params)


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: ``number state value worker`` and one column per parameter."""
    trials: list[FrozenTrial] = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    names = {name for t in trials for name in t.params}
    columns = [n for n in SEARCH_SPACE if n in names] + sorted(names - set(SEARCH_SPACE))
    rows = [
        {
            "number": t.number,
            "state": t.state.name,
            "value": t.value,
            "worker": t.user_attrs.get("worker"),
            **{name: t.params.get(name) for name in columns},
        }
        for t in trials
    ]
    return pd.DataFrame(rows, columns=["number", "state", "value", "worker", *columns])


def plot_history(tables: Mapping[str, pd.DataFrame], path: str | Path) -> Path:
    """PNG of the objective per COMPLETE trial and the running best (minimised), one colour
    per label; ``tables`` are :func:`trials_table` frames (e.g. read back from TSV)."""
    from voxflow.evaluate.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for i, (label, table) in enumerate(tables.items()):
        done = table[(table["state"] == "COMPLETE") & np.isfinite(table["value"].astype(float))]
        done = done.sort_values("number")
        if done.empty:
            continue
        x, y = done["number"].to_numpy(), done["value"].to_numpy(float)
        ax.plot(x, y, "o", color=f"C{i % 10}", alpha=0.5, ms=4)
        ax.step(x, np.minimum.accumulate(y), where="post", color=f"C{i % 10}", label=label)
    ax.set(xlabel="trial", ylabel="objective (1 / F1)", title="Bayesian optimisation history")
    ax.grid(alpha=0.3)
    if ax.has_data():
        ax.legend(fontsize="small", title="best so far")
    return _save(fig, path)
