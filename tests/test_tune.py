"""voxflow.tune: the paper's search space, budgets, resume after SIGKILL, parallel workers."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from voxflow import tune
from voxflow.errors import VoxflowError


def quad(params: dict) -> float:
    """Cheap analytic objective: minimum 1 at lr = 1e-3, l2 = 1e-4."""
    return 1.0 + (math.log10(params["lr"]) + 3) ** 2 + (math.log10(params["l2"]) + 4) ** 2


def _states(study):
    return [t.state for t in study.get_trials(deepcopy=False)]


def _n_complete(study):
    return _states(study).count(TrialState.COMPLETE)


# A worker in its own process: argv = journal, worker, n_trials, marker ("" = none), sleep_s.
# With a marker, the 3rd objective call writes it and hangs (to be SIGKILLed).
WORKER = textwrap.dedent(
    """
    import math, pathlib, sys, time
    from voxflow.tune import run_worker

    journal, worker, n_trials, marker, sleep_s = sys.argv[1:6]
    calls = 0

    def objective(p):
        global calls
        calls += 1
        if marker and calls == 3:
            pathlib.Path(marker).write_text("hanging")
            time.sleep(60)
        time.sleep(float(sleep_s))
        return 1.0 + (math.log10(p["lr"]) + 3) ** 2 + (math.log10(p["l2"]) + 4) ** 2

    run_worker(journal, "proposed_fold0", objective, "proposed", int(n_trials),
               worker=int(worker), sampler="tpe", seed=3, n_startup_trials=3)
    """
)


def _spawn(journal, worker, n_trials, marker="", sleep_s=0.0):
    cmd = [sys.executable, "-c", WORKER, str(journal), str(worker), str(n_trials), str(marker)]
    return subprocess.Popen(
        [*cmd, str(sleep_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


# ---------------------------------------------------------------------------- search space


def test_search_space_is_the_papers_list():
    s = tune.SEARCH_SPACE
    assert list(s) == [
        "l2",
        "lr",
        "batch_size",
        "grad_threshold",
        "grad_method",
        "oversampling",
        "class_weight",
    ]
    assert s["l2"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert s["lr"] == FloatDistribution(1e-5, 1e-2, log=True)
    assert s["batch_size"] == IntDistribution(16, 64, step=16)
    assert s["grad_threshold"] == IntDistribution(1, 6, step=1)
    assert s["grad_method"] == CategoricalDistribution(["l2norm", "global-l2norm"])
    assert s["oversampling"] == FloatDistribution(0.0, 0.25, log=False)
    assert s["class_weight"] == FloatDistribution(0.0, 1.0, log=False)
    assert not s["batch_size"].log and not s["grad_threshold"].log
    assert s["oversampling"].step is None and s["class_weight"].step is None

    assert tune.ARMS["proposed"] == tuple(s)
    assert tune.ARMS["control"] == tuple(s)[:5]
    assert list(tune.search_space("control")) == list(s)[:5]
    assert tune.search_space("proposed") == s
    assert tune.CONTROL_FIXED == {"oversampling": 0.0, "class_weight": 0.0}

    drawn = {"l2": 1e-4, "lr": 1e-3, "batch_size": 32, "grad_threshold": 2, "grad_method": "l2norm"}
    full = tune.full_params("control", drawn)
    assert list(full) == list(s) and full["oversampling"] == 0.0 and full["class_weight"] == 0.0
    assert tune.full_params("proposed", drawn) == drawn


def test_overrides_change_bounds_only():
    space = tune.search_space(
        "proposed",
        {
            "batch_size": [4, 16, 4],
            "lr": [1e-4, "1e-3"],
            "grad_threshold": [2, 3],
            "grad_method": ["l2norm"],
        },
    )
    assert list(space) == list(tune.SEARCH_SPACE)
    assert space["batch_size"] == IntDistribution(4, 16, step=4)
    assert space["lr"] == FloatDistribution(1e-4, 1e-3, log=True)
    assert space["grad_threshold"] == IntDistribution(2, 3)
    assert space["grad_method"] == CategoricalDistribution(["l2norm"])
    assert space["l2"] == tune.SEARCH_SPACE["l2"]
    # a variable the control arm does not search is ignored there
    assert tune.search_space("control", {"class_weight": [0, 0.5]}) == tune.search_space("control")


@pytest.mark.parametrize(
    ("arm", "overrides", "match"),
    [
        ("treatment", None, "not one of proposed, control"),
        ("proposed", {"dropout": [0, 1]}, "'dropout': not a design variable"),
        ("proposed", {"batch_size": [64, 16, 16]}, "'batch_size'"),
        ("proposed", {"batch_size": [16, 60, 16]}, "multiple of step"),
        ("proposed", {"batch_size": [16.5, 64]}, "integers"),
        ("proposed", {"lr": [1e-4, 1e-3, 1e-4]}, "'lr'"),
        ("proposed", {"lr": [0.0, 1e-3]}, "'lr'"),
        ("proposed", {"lr": 1e-3}, "expected a list"),
        ("proposed", {"grad_method": []}, "'grad_method'"),
    ],
)
def test_bad_arm_or_override_errors(arm, overrides, match):
    with pytest.raises(VoxflowError, match=match):
        tune.search_space(arm, overrides)


def test_suggest_draws_every_variable_within_bounds():
    space = tune.search_space("proposed", {"batch_size": [4, 16, 4]})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        params = tune.suggest(trial, space)
        assert list(params) == list(space)
        assert trial.distributions == space
        assert params["batch_size"] in (4, 8, 12, 16)
        assert params["grad_method"] in ("l2norm", "global-l2norm")
        assert 1e-5 <= params["l2"] <= 1e-2 and 0 <= params["oversampling"] <= 0.25
        study.tell(trial, 1.0)


def test_make_sampler_choices_and_typo():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # GPSampler is not experimental in Optuna 5
        assert isinstance(tune.make_sampler("gp", 0), optuna.samplers.GPSampler)
        assert isinstance(tune.make_sampler("tpe", 0, 4), optuna.samplers.TPESampler)
        assert isinstance(tune.make_sampler("random", 0), optuna.samplers.RandomSampler)
    with pytest.raises(VoxflowError, match="'gpp': not one of gp, tpe, random"):
        tune.make_sampler("gpp", 0)


# ---------------------------------------------------------------------------- budget, resume


def test_budget_exact_rerun_noop_and_raise(tmp_path):
    path = tmp_path / "optuna" / "proposed_fold0.journal"
    study = tune.run_worker(path, "s", quad, "proposed", 5, sampler="tpe", n_startup_trials=3)
    assert path.exists()
    assert _states(study) == [TrialState.COMPLETE] * 5
    assert {t.user_attrs["worker"] for t in study.trials} == {0}

    again = tune.run_worker(path, "s", quad, "proposed", 5, sampler="tpe", n_startup_trials=3)
    assert len(again.trials) == 5

    more = tune.run_worker(path, "s", quad, "proposed", 7, sampler="tpe", n_startup_trials=3)
    assert _states(more) == [TrialState.COMPLETE] * 7


def test_other_workers_running_trials_count_against_the_budget(tmp_path):
    path = tmp_path / "s.journal"
    tune.run_worker(path, "s", quad, "proposed", 2, sampler="random")
    study = tune.open_study(path, "s", None)
    alive = study.ask()  # worker 1 is still evaluating this one
    alive.set_user_attr("worker", 1)
    tune.suggest(alive, tune.search_space("proposed"))

    after = tune.run_worker(path, "s", quad, "proposed", 3, worker=0, sampler="random")
    assert _states(after) == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]


def test_changed_search_space_is_refused(tmp_path):
    path = tmp_path / "s.journal"
    tune.run_worker(path, "s", quad, "proposed", 1, sampler="random")
    with pytest.raises(VoxflowError, match=r"s\.journal: study 's' was started for arm"):
        tune.run_worker(path, "s", quad, "proposed", 2, space_overrides={"lr": [1e-4, 1e-3]})
    with pytest.raises(VoxflowError, match="arm 'proposed'"):
        tune.run_worker(path, "s", quad, "control", 2)


def test_objective_error_fails_trial_and_catch_continues(tmp_path):
    calls = []

    def flaky(params):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("CUDA out of memory")
        return quad(params)

    path = tmp_path / "s.journal"
    with pytest.raises(RuntimeError, match="out of memory"):
        tune.run_worker(path, "s", flaky, "proposed", 4, sampler="random")
    study = tune.open_study(path, "s", None)
    assert _states(study) == [TrialState.COMPLETE, TrialState.FAIL]

    calls.clear()
    study = tune.run_worker(
        path, "s", flaky, "proposed", 4, sampler="random", catch=(RuntimeError,)
    )
    assert _n_complete(study) == 4 and _states(study).count(TrialState.FAIL) == 2

    def broken(params):
        raise RuntimeError("always")

    with pytest.raises(VoxflowError, match="3 trials in a row failed"):
        tune.run_worker(tmp_path / "b.journal", "b", broken, "proposed", 2, catch=(RuntimeError,))


def test_killed_tuning_job_resumes_and_redoes_the_dead_trial(tmp_path):
    journal, marker = tmp_path / "optuna" / "proposed_fold0.journal", tmp_path / "hanging"
    proc = _spawn(journal, worker=0, n_trials=5, marker=marker)
    deadline = time.monotonic() + 45
    while not marker.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"worker did not reach its 3rd trial: {proc.communicate()}")
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL

    before = tune.open_study(journal, "proposed_fold0", None)
    assert _states(before) == [TrialState.COMPLETE] * 2 + [TrialState.RUNNING]

    study = tune.run_worker(
        journal, "proposed_fold0", quad, "proposed", 5, sampler="tpe", seed=3, n_startup_trials=3
    )
    trials = study.get_trials()
    dead = trials[2]
    assert dead.state == TrialState.FAIL and dead.user_attrs["worker"] == 0
    redo = [t for t in trials if t.user_attrs.get("retry_of") == dead.number]
    assert len(redo) == 1
    assert redo[0].state == TrialState.COMPLETE and redo[0].params == dead.params
    assert redo[0].number == 3  # redone first
    assert _n_complete(study) == 5
    assert [t.number for t in trials] == list(range(len(trials)))


def test_two_workers_in_parallel_share_one_budget(tmp_path):
    journal = tmp_path / "optuna" / "proposed_fold0.journal"
    procs = [_spawn(journal, worker=w, n_trials=8, sleep_s=0.1) for w in (0, 1)]
    for p in procs:
        out, err = p.communicate(timeout=50)
        assert p.returncode == 0, err
    study = tune.open_study(journal, "proposed_fold0", None)
    trials = study.get_trials()
    assert _n_complete(study) == 8 and len(trials) == 8
    numbers = [t.number for t in trials]
    assert len(set(numbers)) == len(numbers) == 8
    assert {t.user_attrs["worker"] for t in trials} <= {0, 1}


def test_recover_touches_only_this_workers_running_trials(tmp_path):
    space = tune.search_space("proposed")
    study = tune.open_study(tmp_path / "s.journal", "s", optuna.samplers.RandomSampler(seed=0))
    mine, theirs = study.ask(), study.ask()
    mine.set_user_attr("worker", 1)
    theirs.set_user_attr("worker", 0)
    mine_params = tune.suggest(mine, space)
    tune.suggest(theirs, space)
    untagged = study.ask()  # its process died before tagging it

    assert tune.recover(study, worker=1) == [mine.number]
    states = _states(study)
    assert states[mine.number] == TrialState.FAIL
    assert states[theirs.number] == TrialState.RUNNING
    assert states[untagged.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == mine.number
    assert waiting[0].system_attrs["fixed_params"] == mine_params
    assert tune.recover(study, worker=1) == []  # idempotent

    # the enqueued retry is redone with the same parameters
    redo = study.ask()
    redo.set_user_attr("worker", 0)
    assert tune.suggest(redo, space) == mine_params

    # an untagged RUNNING trial counts as dead only once it is old
    assert tune.recover(study, worker=1, untagged_stale_s=0.0) == [untagged.number]
    assert _states(study)[theirs.number] == TrialState.RUNNING


# ---------------------------------------------------------------------------- determinism


@pytest.mark.parametrize("sampler", ["gp", "tpe"])
def test_one_worker_runs_are_reproducible(tmp_path, sampler):
    def run(name, seed=0, worker=0):
        study = tune.run_worker(
            tmp_path / f"{name}.journal",
            "proposed_fold0",
            quad,
            "proposed",
            7,
            worker=worker,
            sampler=sampler,
            seed=seed,
            n_startup_trials=3,
        )
        return [t.params for t in study.trials]

    first = run("a")
    assert run("b") == first
    assert run("c", seed=1) != first
    assert run("d", worker=1) != first


# ---------------------------------------------------------------------------- results


def test_results_best_params_table_and_plot(tmp_path):
    ctrl = tune.run_worker(tmp_path / "c.journal", "control_f0", quad, "control", 4, sampler="tpe")
    prop = tune.run_worker(tmp_path / "p.journal", "proposed_f0", quad, "proposed", 4)

    best = tune.best_params(ctrl, "control")
    assert list(best) == list(tune.SEARCH_SPACE)
    assert best["oversampling"] == 0.0 and best["class_weight"] == 0.0
    assert quad(best) == pytest.approx(ctrl.best_value)
    assert set(tune.best_params(prop, "proposed")) == set(tune.SEARCH_SPACE)

    table = tune.trials_table(ctrl)
    assert list(table.columns) == ["number", "state", "value", "worker", *tune.ARMS["control"]]
    assert table["number"].tolist() == [0, 1, 2, 3]
    assert set(table["state"]) == {"COMPLETE"} and set(table["worker"]) == {0}
    assert list(tune.trials_table(prop).columns)[4:] == list(tune.SEARCH_SPACE)

    tables = {"control": table, "proposed": tune.trials_table(prop)}
    png = tune.plot_history(tables, tmp_path / "fig" / "history.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in png.parent.iterdir()] == ["history.png"]

    empty = tune.open_study(tmp_path / "e.journal", "empty_f0", None)
    with pytest.raises(VoxflowError, match="study 'empty_f0': no COMPLETE trial"):
        tune.best_params(empty, "proposed")
    assert tune.trials_table(empty).columns.tolist() == ["number", "state", "value", "worker"]
