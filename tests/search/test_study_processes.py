"""Independent `workbench study run` processes on one study share its budget and never train a configuration twice."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_process_helpers import postgres_or_skip, start_study_run, stop_all

from workbench.search import load_study_config, open_storage
from workbench.search._sampling import DUPLICATE_OF_KEY
from workbench.search._storage import journal_path
from workbench.tracking import load_trials

pytestmark = pytest.mark.slow

def _start(study_file: Path, workers: int) -> subprocess.Popen[bytes]:
    return start_study_run(study_file, *(["--workers", str(workers)] if workers > 1 else []))


# SQLite takes one worker per process (it is the one-process store); the journal and PostgreSQL cases run
# two workers in each of the two processes, which covers one worker per process on them as well.
@pytest.mark.parametrize(("backend", "workers"), [("sqlite", 1), ("journal", 2), ("postgresql", 2)])
def test_processes_started_together_train_distinct_configurations(backend: str, workers: int, write_study,
                                                                  tmp_path: Path) -> None:
    name = f"together-{backend}-{workers}-{uuid.uuid4().hex[:6]}"
    storage = {"sqlite": "", "journal": f"journal:{tmp_path / 'study.journal'}",
               "postgresql": postgres_or_skip() if backend == "postgresql" else ""}[backend]
    # Two trees x FTA on/off: four configurations for a budget of four, with the default sampler (TPE)
    # and one study seed, so every process would propose the same sequence if seeds were per process.
    path = write_study(name=name, trials=4, iterations=2, storage=storage)
    path.write_text(path.read_text().replace('name = "random"', 'name = "tpe"\nseed = 0'))
    config = load_study_config(path)
    url = storage or f"sqlite:///{config.project_dir / 'optuna.db'}"
    procs = [_start(path, workers), _start(path, workers)]
    try:
        outputs = [proc.communicate(timeout=900)[0].decode(errors="replace") for proc in procs]
        for proc, out in zip(procs, outputs, strict=True):
            assert proc.returncode == 0, out[-4000:]
        study = optuna.load_study(study_name=name, storage=open_storage(url))
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        failed = [t for t in trials if t.state == TrialState.FAIL and DUPLICATE_OF_KEY not in t.user_attrs]
        assert not failed, [t.user_attrs for t in failed]
        assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        assert len(complete) == 4, [t.state for t in trials]
        configurations = [tuple(sorted(t.params.items())) for t in complete]
        assert len(set(configurations)) == 4, f"two trials trained one configuration: {configurations}"
        owners = {str(t.system_attrs.get("workbench:worker", "")).rsplit(":", 1)[-1] for t in complete}
        assert len(owners) >= 2, "both processes took part"
        runs = load_trials(config.tracking.uri, config.experiment_name)
        state = next(c for c in runs.columns if c.endswith("state"))
        assert sorted(runs[state]) == ["complete"] * 4, "one MLflow run per trained trial, none for skipped ones"
    finally:
        stop_all(procs)
        if backend == "postgresql":
            optuna.delete_study(study_name=name, storage=open_storage(url))


def test_a_worker_with_no_trial_left_trains_a_running_trials_seed(write_study) -> None:
    # One configuration, two seeds, two workers: the second worker has no trial to start and takes seed 1.
    path = write_study(name="helper", trials=1, iterations=40, extra='[pruner]\nname = "none"\n')
    path.write_text(path.read_text().replace("eval_every = 2", "eval_every = 40\nseeds = 2")
                    .replace("fta = [true, false]", "fta = [true]").replace('presets = ["casia-b-paper", "uniform-64"]',
                                                                           'presets = ["uniform-64"]'))
    proc = _start(path, 2)
    try:
        out = proc.communicate(timeout=900)[0].decode(errors="replace")
    finally:
        stop_all([proc])
    assert proc.returncode == 0, out[-4000:]
    assert "seed 1 trained here, beside the worker running the trial" in out, out[-4000:]
    config = load_study_config(path)
    url = f"journal:{journal_path(config.project_dir, 'helper')}"
    (trial,) = optuna.load_study(study_name="helper", storage=open_storage(url)).get_trials(deepcopy=False)
    assert trial.state == TrialState.COMPLETE and trial.user_attrs["seeds"] == [0, 1]
    import mlflow

    # The owner read the helped seed back, view tables included: they reach the trial's MLflow run.
    logged = mlflow.MlflowClient(config.tracking.uri).list_artifacts(trial.user_attrs["mlflow_run_id"], "evaluation")
    assert any(a.path.endswith(".csv") for a in logged), [a.path for a in logged]
