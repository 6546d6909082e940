"""Real worker processes: a killed worker's trial is failed, retried once, and nothing is lost or doubled."""

from __future__ import annotations

import signal
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_process_helpers import postgres_or_skip, start_study_run, stop_all

from workbench.search import load_study_config, open_storage
from workbench.search._heartbeat import WORKER_KEY
from workbench.tracking import load_trials

pytestmark = pytest.mark.slow

def _wait_for(predicate, timeout: float, what: str, procs=()) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        for proc in procs:
            if proc.poll() is not None:
                out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                raise AssertionError(f"worker exited early ({proc.returncode}) while waiting for {what}:\n{out[-3000:]}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _owned_running_trial(study: optuna.Study, pid: int, with_checkpoint: bool) -> bool:
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if str(t.system_attrs.get(WORKER_KEY, "")).endswith(f":{pid}"):
            out = t.user_attrs.get("output_dir")
            if not with_checkpoint or (out and any(Path(out).glob("checkpoint-*.pt"))):
                return True
    return False


def _check_accounting(study: optuna.Study, budget: int) -> None:
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    failed = [t for t in trials if t.state == TrialState.FAIL and "duplicate_of" not in t.user_attrs]
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    assert len(done) == budget, f"{len(done)} finished trials for a budget of {budget}: {states}"
    assert len(failed) >= 1, "the killed worker's trial must be recorded as failed"
    retried = [t.user_attrs.get("retry_of") for t in done if "retry_of" in t.user_attrs]
    for t in failed:
        assert retried.count(t.number) == 1, f"failed trial {t.number} retried {retried.count(t.number)} times"


@pytest.mark.parametrize("backend", ["journal", "postgresql"])
def test_two_workers_survive_one_being_killed(backend: str, write_study, tmp_path: Path) -> None:
    name = f"workers-{backend}-{uuid.uuid4().hex[:8]}"
    url = f"journal:{tmp_path / 'study.journal'}" if backend == "journal" else postgres_or_skip()
    budget = 3
    path = write_study(name=name, trials=budget, iterations=6, storage=url)
    config = load_study_config(path)
    first, second = start_study_run(path), start_study_run(path)
    procs = [first, second]
    try:
        def ready() -> bool:
            try:
                study = optuna.load_study(study_name=name, storage=open_storage(url))
            except KeyError:
                return False
            return _owned_running_trial(study, first.pid, with_checkpoint=True)

        _wait_for(ready, 600, "the first worker to checkpoint a trial", procs)
        first.send_signal(signal.SIGKILL)
        first.wait()
        out, _ = second.communicate(timeout=900)
        assert second.returncode == 0, out.decode(errors="replace")[-3000:]
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        _check_accounting(study, budget)
        retries = [t for t in study.trials if "retry_of" in t.user_attrs and t.state == TrialState.COMPLETE]
        assert any(t.user_attrs.get("start_step", 0) > 0 for t in retries), "the retry resumes from the checkpoint"
        runs = load_trials(config.tracking.uri, config.experiment_name)
        state_col = next(c for c in runs.columns if c.endswith("state"))
        assert "failed" in set(runs[state_col]), "the lost trial's MLflow run is closed as failed"
    finally:
        stop_all(procs)
        if backend == "postgresql":
            optuna.delete_study(study_name=name, storage=open_storage(url))


def test_killed_study_run_resumes_with_the_same_command(write_study) -> None:
    budget = 2
    path = write_study(name="killed", trials=budget, iterations=6)
    config = load_study_config(path)
    url = f"sqlite:///{config.project_dir / 'optuna.db'}"
    proc = start_study_run(path)
    try:
        def ready() -> bool:
            if not (config.project_dir / "optuna.db").exists():
                return False
            try:
                study = optuna.load_study(study_name="killed", storage=open_storage(url))
            except KeyError:
                return False
            return _owned_running_trial(study, proc.pid, with_checkpoint=True)

        _wait_for(ready, 600, "a checkpointed trial", [proc])
    finally:
        proc.kill()
        proc.wait()
    again = start_study_run(path)
    out, _ = again.communicate(timeout=900)
    assert again.returncode == 0, out.decode(errors="replace")[-3000:]
    study = optuna.load_study(study_name="killed", storage=open_storage(url))
    _check_accounting(study, budget)
