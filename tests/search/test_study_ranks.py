"""Study trials trained as two gloo DDP ranks (`[train] nproc_per_node = 2`): results, pruning, lost ranks
and workers, two workers at once, checks."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
import torch.distributed as dist
from optuna.trial import TrialState

from workbench._process import is_running
from workbench.cli import main
from workbench.config import ConfigError
from workbench.search import load_study_config, open_storage, run_study
from workbench.search._devices import trial_ranks, worker_gpus
from workbench.search._heartbeat import FAIL_REASON_KEY, WORKER_KEY
from workbench.search._replicates import _TrialRanks
from workbench.tracking import load_trials
from workbench.training import TrainConfig


def _with_ranks(path: Path, ranks: int = 2, extra: str = "") -> Path:
    """The study file with ``[train] nproc_per_node`` (and ``extra`` lines of ``[train]``) added."""
    path.write_text(path.read_text().replace("[train]\n", f"[train]\nnproc_per_node = {ranks}\n{extra}", 1))
    return path


def _study(path: Path) -> optuna.Study:
    config = load_study_config(path)
    return optuna.load_study(study_name=config.study.name,
                             storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_two_rank_trial_logs_what_a_one_process_trial_logs(write_study) -> None:
    one = write_study(name="one-process", trials=1, iterations=2)
    two = _with_ranks(write_study(name="two-ranks", trials=1, iterations=2))
    assert run_study(one).complete == 1
    summary = run_study(two)
    assert (summary.complete, summary.failed) == (1, 0)
    assert not mp.active_children(), "the trial's ranks have ended"

    tables = {}
    for path in (one, two):
        config = load_study_config(path)
        tables[path] = load_trials(config.tracking.uri, config.experiment_name)
    single, ranked = tables[one], tables[two]
    columns = {c for c in ranked.columns if c.startswith(("params.", "metrics."))}
    assert columns == {c for c in single.columns if c.startswith(("params.", "metrics."))}
    assert any(c.endswith("val/rank1") for c in columns) and "metrics.gflops" in columns
    assert ranked["tags.workbench.ranks"].tolist() == ["2"]
    assert ranked["tags.workbench.state"].tolist() == ["complete"]

    trial = _study(two).best_trial
    folder = Path(trial.user_attrs["output_dir"])
    assert (folder / "evaluation" / "subject_scores.npz").is_file(), "rank 0 saved the validation result"
    assert "nproc_per_node = 2" in (folder / "config.toml").read_text()
    assert trial.value == pytest.approx(ranked["metrics.val/rank1"].iloc[0])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_pruned_two_rank_trial_stops_in_every_rank(write_study, caplog) -> None:
    # Rank-1 is never above 101 %: the threshold pruner stops the trial at its first evaluation (step 2).
    pruner = '[pruner]\nname = "threshold"\nlower = 101.0\n'
    path = _with_ranks(write_study(name="pruned", trials=1, iterations=40, extra=pruner))
    with caplog.at_level(logging.WARNING, logger="workbench.training._launch"):
        summary = run_study(path)
    assert (summary.pruned, summary.complete, summary.failed) == (1, 0, 0)
    # Every rank left its loop at step 2 by itself: none had to be terminated, none is left.
    assert not caplog.records, caplog.text
    assert not mp.active_children()
    trial = _study(path).trials[0]
    checkpoints = sorted(p.name for p in Path(trial.user_attrs["output_dir"]).glob("checkpoint-*.pt"))
    assert checkpoints[-1] == "checkpoint-00000002.pt"
    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert runs["tags.workbench.state"].tolist() == ["pruned"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_rank_fails_the_trial_which_resumes_from_its_checkpoint(write_study, monkeypatch) -> None:
    from workbench.tracking import MLflowTrainingCallback

    real_on_step = MLflowTrainingCallback.on_step
    killed: list[int] = []

    def on_step(self, step, metrics):  # type: ignore[no-untyped-def]
        real_on_step(self, step, metrics)
        if step == 3 and not killed:  # the first attempt loses rank 1 after its third checkpoint
            (rank_one,) = [p for p in mp.active_children() if p.name == "rank-1"]
            killed.append(rank_one.pid)
            os.kill(rank_one.pid, signal.SIGKILL)

    monkeypatch.setattr(MLflowTrainingCallback, "on_step", on_step)
    path = _with_ranks(write_study(name="lost-rank", trials=1, iterations=8))
    summary = run_study(path)
    assert killed and not mp.active_children()
    # The lost trial is not held against the study (no error counted); its retry resumed where the
    # checkpoints stopped.
    assert (summary.complete, summary.failed, summary.stopped) == (1, 1, "")
    lost, retry = sorted(_study(path).trials, key=lambda t: t.number)
    assert lost.state == TrialState.FAIL and "error" not in lost.user_attrs
    assert "rank 1 of 2 was killed by SIGKILL" in lost.system_attrs["workbench:fail_reason"]
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == lost.number
    assert retry.user_attrs["start_step"] >= 3
    assert retry.user_attrs["output_dir"] == lost.user_attrs["output_dir"]
    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert sorted(runs["tags.workbench.state"]) == ["complete", "failed"]


class PausingRanks(_TrialRanks):
    """A trial's ranks that write their pids, rank 0 stopping in its evaluation at step 2 (after that
    step's checkpoint) as in a long evaluation on real data: meanwhile no rank talks to its worker."""

    def data(self, config: TrainConfig) -> Any:
        (self.saved.parent / f"rank-{dist.get_rank()}.pid").write_text(str(os.getpid()))
        return super().data(config)

    def evaluator(self, config: TrainConfig) -> Any:
        evaluate = super().evaluator(config)
        marker = self.saved.parent / "rank-0.evaluating"

        def pausing(model: Any, step: int) -> Any:
            if step == 2:
                marker.touch()
                time.sleep(300)
            return evaluate(model, step)

        return pausing


# A study worker (the process that runs the trial loop) whose trials' ranks pause in their first evaluation.
# Spawned ranks run this file's top level again, so only the worker runs the study.
PAUSING_WORKER = """
import sys
sys.path.insert(0, {tests!r})
from test_study_ranks import PausingRanks
from workbench.search import _replicates, run_study
_replicates._TrialRanks = PausingRanks
if __name__ == "__main__":
    run_study({study!r})
"""




@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_killed_worker_takes_its_ranks_along_and_its_trial_resumes(write_study, tmp_path: Path) -> None:
    path = _with_ranks(write_study(name="lost-worker", trials=1, iterations=4))
    folder = load_study_config(path).project_dir / "trials" / "lost-worker" / "trial-0000"
    script = tmp_path / "worker.py"
    script.write_text(PAUSING_WORKER.format(tests=str(Path(__file__).parent), study=str(path)))
    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen([sys.executable, str(script)], stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "OMP_NUM_THREADS": "2"})
    ranks: list[int] = []
    try:
        ends = time.monotonic() + 180
        while not (folder / "rank-0.evaluating").exists():
            assert worker.poll() is None, f"the worker ended early:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < ends, f"rank 0 never evaluated:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)
        ranks = [int((folder / f"rank-{r}.pid").read_text()) for r in range(2)]
        assert all(is_running(pid) for pid in ranks)
        worker.kill()  # SIGKILL, as a scheduler or the out-of-memory killer ends it: nothing is cleaned up
        worker.wait()
        ends = time.monotonic() + 10
        while any(is_running(pid) for pid in ranks) and time.monotonic() < ends:
            time.sleep(0.1)
        assert not any(is_running(pid) for pid in ranks), "a rank trained on after its worker was killed"
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        for pid in ranks:
            if is_running(pid):
                os.kill(pid, signal.SIGKILL)

    # The same command again: the dead worker's trial is failed (its pid is gone), queued and resumed
    # from the checkpoint of step 2, not held against the study.
    summary = run_study(path)
    assert (summary.complete, summary.failed, summary.stopped) == (1, 1, "")
    lost, retry = sorted(_study(path).trials, key=lambda t: t.number)
    assert lost.system_attrs[WORKER_KEY].endswith(f":{worker.pid}")
    assert lost.state == TrialState.FAIL and "error" not in lost.user_attrs
    assert lost.system_attrs[FAIL_REASON_KEY] == "worker lost (stale heartbeat)"
    assert retry.state == TrialState.COMPLETE and retry.user_attrs["retry_of"] == lost.number
    assert retry.user_attrs["start_step"] == 2, "the retry resumed from the lost trial's last checkpoint"
    assert retry.user_attrs["output_dir"] == lost.user_attrs["output_dir"] == str(folder)
    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert sorted(runs["tags.workbench.state"]) == ["complete", "failed"], "the lost trial's run is closed"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_workers_train_two_rank_trials_at_once(write_study) -> None:
    # Two workers, two gloo ranks each, on one machine: each trial's ranks meet through their own store.
    path = _with_ranks(write_study(name="workers-ranks", trials=2, iterations=2))
    summary = run_study(path, workers=2)
    assert (summary.complete, summary.failed, summary.running, summary.waiting) == (2, 0, 0, 0)
    assert not mp.active_children(), "the workers and their ranks have ended"
    config = load_study_config(path)
    study = optuna.load_study(study_name=config.study.name, storage=open_storage(summary.storage_url))
    trials = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({t.system_attrs[WORKER_KEY] for t in trials}) == 2, "each worker trained one trial"
    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert runs["tags.workbench.state"].tolist() == ["complete", "complete"]
    assert runs["tags.workbench.ranks"].tolist() == ["2", "2"]
    assert runs["metrics.val/rank1"].notna().all() and runs["metrics.gflops"].notna().all()
    for trial in trials:
        assert trial.value == pytest.approx(runs.loc[runs["tags.workbench.trial"] == str(trial.number),
                                                     "metrics.val/rank1"].iloc[0])


def test_ranks_take_gpus_of_their_own_and_too_few_gpus_are_refused() -> None:
    eight = [str(i) for i in range(8)]
    assert worker_gpus(2, None, eight, ranks=4) == ["0,1,2,3", "4,5,6,7"]
    assert worker_gpus(8, None, eight, ranks=1) == eight
    assert worker_gpus(1, None, eight, ranks=2) == ["0,1"], "one worker takes the first K"
    assert worker_gpus(2, [6, 7, 2, 3], eight, ranks=2) == ["6,7", "2,3"]
    assert worker_gpus(2, None, [], ranks=2) == [None, None], "on a CPU machine the ranks use gloo"
    with pytest.raises(ValueError, match=r"train\.nproc_per_node = 4 with 2 worker\(s\) needs 8 GPUs.*sees 6"):
        worker_gpus(2, None, eight[:6], ranks=4)
    with pytest.raises(ValueError, match=r"train\.nproc_per_node = 2 .* needs 4 GPUs.*--gpus lists 3"):
        worker_gpus(2, [0, 1, 2], eight, ranks=2)


def test_rank_counts_are_checked_before_any_work(write_study, monkeypatch, capsys) -> None:
    with pytest.raises(ConfigError, match="nproc_per_node must be >= 1"):
        load_study_config(_with_ranks(write_study(name="zero"), ranks=0))

    models = '["hstl-small"]'
    path = write_study(name="per-model", models=models, extra="[models.hstl-small]\nnproc_per_node = 4\n")
    path = _with_ranks(path)
    with pytest.raises(ValueError, match=r"models\.hstl-small\.nproc_per_node = 4 differs from train\.nproc_per_node"):
        trial_ranks(load_study_config(path))

    # A CUDA machine with one GPU cannot host a two-rank trial: the study stops before rendering anything.
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    path = _with_ranks(write_study(name="one-gpu"))
    assert main(["study", "run", str(path)]) == 2
    assert "train.nproc_per_node = 2" in capsys.readouterr().err
    assert not (load_study_config(path).project_dir / "splits").exists()
