"""`workbench study run --workers 2` stopped by SIGTERM: no worker trains on, every run is closed, checkpoints stay."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from study_process_helpers import start_study_run, stop_all

from workbench._process import EXIT_TERMINATED
from workbench.search import load_study_config, open_storage
from workbench.tracking import load_trials

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc")]


def _workers(pid: int) -> list[int]:
    """The processes ``pid`` spawned to run trials (not multiprocessing's resource tracker)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z" and b"spawn_main" in (stat.parent / "cmdline").read_bytes():
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_the_workers_closes_the_runs_and_keeps_the_checkpoints(write_study, tmp_path: Path) -> None:
    # Long trials (they would run for minutes), so both workers are mid-trial when the signal comes.
    path = write_study(name="stopped", trials=2, iterations=5000,
                       storage=f"journal:{tmp_path / 'study.journal'}")
    config = load_study_config(path)
    url = f"journal:{tmp_path / 'study.journal'}"
    proc = start_study_run(path, "--workers", "2")
    try:
        ends = time.monotonic() + 240
        running: list[optuna.trial.FrozenTrial] = []
        while len(running) < 2:
            assert proc.poll() is None, proc.communicate()[0].decode(errors="replace")[-4000:]
            assert time.monotonic() < ends, "two trials never trained at once"
            time.sleep(0.5)
            try:
                study = optuna.load_study(study_name="stopped", storage=open_storage(url))
            except (KeyError, ValueError, OSError):
                continue
            running = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING
                       and list(Path(t.user_attrs.get("output_dir", tmp_path / "none")).rglob("checkpoint-*.pt"))]
        workers = _workers(proc.pid)
        assert len(workers) == 2, "the two spawned workers"
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=120)[0].decode(errors="replace")
        assert proc.returncode == EXIT_TERMINATED, out[-4000:]
        assert "Traceback" not in out, out[-4000:]
        assert not [w for w in workers if _running(w)], "a worker trained on after `study run` was stopped"

        runs = load_trials(config.tracking.uri, config.experiment_name)
        state = next(c for c in runs.columns if c.endswith("state"))
        assert "running" not in set(runs[state]), "every trial's MLflow run was closed"
        # The study's own run is marked as killed (it carries no trial number).
        import mlflow

        client = mlflow.MlflowClient(config.tracking.uri)
        experiment = client.get_experiment_by_name(config.experiment_name)
        statuses = {r.info.run_name: r.info.status for r in client.search_runs([experiment.experiment_id])}
        assert "KILLED" in statuses.values(), statuses
        for trial in running:  # what the next `study run` resumes from: the worker's cleanup deleted nothing
            assert list(Path(trial.user_attrs["output_dir"]).rglob("checkpoint-*.pt")), trial.user_attrs
    finally:
        stop_all([proc])
