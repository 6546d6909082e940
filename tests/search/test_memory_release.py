"""Memory is released after every trained seed and every trial, so workers sharing a GPU get it back."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import optuna
from optuna.trial import TrialState
from torch import nn

from workbench.search import _replicates as replicates
from workbench.search import load_study_config
from workbench.search._objective import TrialResult
from workbench.search._runner import worker_loop
from workbench.training import TrainConfig, TrainResult

optuna.logging.set_verbosity(optuna.logging.WARNING)


class _Result:
    """An evaluation result that saves nothing."""

    def save(self, out_dir: Path) -> list[Path]:
        return []


def test_each_trained_seed_releases_memory_once_its_trainer_is_gone(tmp_path: Path, monkeypatch) -> None:
    events: list[tuple[str, Any]] = []
    models: list[weakref.ref[nn.Module]] = []

    class Trainer:
        def __init__(self, config: TrainConfig, **kwargs: Any) -> None:
            self.config, self.model = config, nn.Linear(2, 2)
            models.append(weakref.ref(self.model))

        def fit(self, resume: bool) -> TrainResult:
            events.append(("trained", self.config.seed))
            return TrainResult("completed", 1, Path(self.config.output_dir), None)

    def release() -> None:
        gc.collect()
        events.append(("released", [model() is None for model in models]))

    monkeypatch.setattr(replicates, "Trainer", Trainer)
    monkeypatch.setattr(replicates, "_Evaluator", lambda *args: SimpleNamespace(last=_Result()))
    monkeypatch.setattr(replicates, "release_memory", release)
    done = replicates.train_replicates(None, None, None, None, TrainConfig(), tmp_path, seeds=[3, 4])  # type: ignore[arg-type]
    assert [r.seed for r in done] == [3, 4]
    assert events == [("trained", 3), ("released", [True]), ("trained", 4), ("released", [True, True])]


def test_the_worker_loop_releases_memory_after_every_trial(write_study, tmp_path: Path, monkeypatch) -> None:
    # A pruned or failed trial's trainer is held by its exception until the trial has handled it.
    config = load_study_config(write_study(name="release", trials=3))
    outcomes = iter([TrialResult(TrialState.COMPLETE, (0.5,)), TrialResult(TrialState.PRUNED),
                     TrialResult(TrialState.FAIL), TrialResult(TrialState.COMPLETE, (0.25,))])
    events: list[str] = []

    def run_trial(config: Any, prepared: Any, study: optuna.Study, trial: optuna.Trial) -> TrialResult:
        events.append(f"trial {trial.number}")
        return next(outcomes)

    monkeypatch.setattr("workbench.search._objective.run_trial", run_trial)
    monkeypatch.setattr("workbench.training.release_memory", lambda: events.append("released"))
    prepared = SimpleNamespace(candidates=[])
    assert worker_loop(config, prepared, f"sqlite:///{tmp_path / 'optuna.db'}", 3) == 4  # type: ignore[arg-type]
    assert events == ["trial 0", "released", "trial 1", "released", "trial 2", "released", "trial 3", "released"]
