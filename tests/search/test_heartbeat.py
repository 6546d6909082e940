"""Liveness across storages: a lost worker's trial is failed once and queued again exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from workbench.search import Heartbeat, count_trials, is_stale, open_storage, reap_stale_trials
from workbench.search._heartbeat import HEARTBEAT_KEY, WORKER_KEY

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _study(url: str, name: str = "s") -> optuna.Study:
    return optuna.create_study(study_name=name, storage=open_storage(url), load_if_exists=True)


@pytest.fixture(params=["journal", "sqlite"])
def storage_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "journal":
        return f"journal:{tmp_path / 'study.journal'}"
    return f"sqlite:///{tmp_path / 'study.db'}"


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_live_trial_is_not_reaped(storage_url: str) -> None:
    study = _study(storage_url)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    with Heartbeat(study, trial._trial_id, interval=0.05):
        time.sleep(0.2)
        result = reap_stale_trials(study, grace=5.0)
    assert result.failed == ()
    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen.state == TrialState.RUNNING
    assert frozen.system_attrs[WORKER_KEY].endswith(f":{os.getpid()}")


def test_dead_worker_trial_is_failed_and_retried_once(storage_url: str) -> None:
    study = _study(storage_url)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    trial.set_user_attr("output_dir", "/tmp/trial-0")
    import socket

    study._storage.set_trial_system_attr(trial._trial_id, WORKER_KEY, f"{socket.gethostname()}:{_dead_pid()}")
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY, time.time())
    assert is_stale(study.get_trials(deepcopy=False)[0], grace=600.0)

    other = _study(storage_url)  # a second worker's view of the same study
    first = reap_stale_trials(study, grace=600.0)
    second = reap_stale_trials(other, grace=600.0)
    assert first.failed == (0,) and first.retried == (0,)
    assert second.failed == ()
    counts = count_trials(study)
    assert counts[TrialState.FAIL] == 1 and counts[TrialState.WAITING] == 1
    retry = study.ask()
    assert retry.suggest_float("x", 0, 1) == trial.params["x"]  # the queued retry replays the same point
    assert retry.user_attrs["retry_of"] == 0
    assert retry.user_attrs["output_dir"] == "/tmp/trial-0"


def test_silent_trial_is_stale_after_grace(storage_url: str) -> None:
    study = _study(storage_url)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_KEY, "elsewhere:1")
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY, time.time() - 100)
    frozen = study.get_trials(deepcopy=False)[0]
    assert not is_stale(frozen, grace=200.0)
    assert is_stale(frozen, grace=50.0)


def test_trial_without_params_is_failed_but_not_requeued(storage_url: str) -> None:
    study = _study(storage_url)
    trial = study.ask()
    study._storage.set_trial_system_attr(trial._trial_id, WORKER_KEY, "elsewhere:1")
    study._storage.set_trial_system_attr(trial._trial_id, HEARTBEAT_KEY, time.time() - 100)
    result = reap_stale_trials(study, grace=10.0)
    assert result.failed == (0,) and result.retried == ()
    assert count_trials(study)[TrialState.WAITING] == 0


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="zombies are read from /proc (Linux)")
def test_a_killed_worker_not_yet_collected_counts_as_dead() -> None:
    # `study run --workers N` collects its workers only when it ends: until then a SIGKILLed one is a
    # zombie, which answers signal 0 like a live process, and its trial would wait out the grace period.
    from workbench._process import is_running

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert is_running(child.pid)
        os.kill(child.pid, signal.SIGKILL)
        deadline = time.time() + 10
        while is_running(child.pid) and time.time() < deadline:
            time.sleep(0.05)
        assert not is_running(child.pid)
        assert child.poll() is not None  # it was a zombie until now: collected only here
    finally:
        child.kill()
        child.wait()
