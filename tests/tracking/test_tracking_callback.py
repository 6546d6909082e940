"""The MLflow training callback against the trainer's hook contract, with a recording client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workbench.tracking import TAG_CHECKPOINT, TAG_CHECKPOINT_STEP, MLflowTrainingCallback, StudyTracker
from workbench.training import TrainInfo, TrainingCallback, TrainResult


class CountingClient:
    """Wraps an MlflowClient and counts ``log_batch`` calls that carry metrics."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.metric_batches = 0

    def log_batch(self, run_id: str, **kwargs: Any) -> None:
        if kwargs.get("metrics"):
            self.metric_batches += 1
        self._client.log_batch(run_id, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@dataclass(frozen=True)
class TinyConfig:
    iterations: int = 40
    split: tuple[int, ...] = (8, 32, 16, 8)


def _info(tmp_path: Path, start_step: int = 0) -> TrainInfo:
    return TrainInfo(config=TinyConfig(), output_dir=tmp_path / "out", start_step=start_step, iterations=40,
                     num_classes=8, parameters=1234, device="cpu", world_size=1, batch_size=16)


def test_hooks_log_sampled_steps_evaluations_checkpoints_and_the_end(tracking_uri: str, tmp_path: Path) -> None:
    tracker = StudyTracker(tracking_uri, "exp", "cb")
    run = tracker.start_trial(0, {"tree_id": "abc"})
    counting = CountingClient(run.client)
    run.client = counting
    callback = MLflowTrainingCallback(run, log_every=5, flush_every=3)
    assert isinstance(callback, TrainingCallback)

    callback.on_train_start(_info(tmp_path))
    for step in range(1, 31):
        callback.on_step(step, {"loss": 1.0 / step, "lr": 1e-4})
    assert counting.metric_batches == 2  # steps 5-15 then 20-30, three sampled steps per batch
    callback.on_checkpoint(30, tmp_path / "out" / "ckpt-30.pt")
    callback.on_evaluation(30, {"rank1": 0.61, "mAP": 0.4})
    for step in range(31, 41):
        callback.on_step(step, {"loss": 0.01, "lr": 1e-5})
    result = TrainResult(status="completed", step=41, output_dir=tmp_path / "out",
                         checkpoint=tmp_path / "out" / "ckpt-41.pt", last_metrics={"loss": 0.009, "lr": 1e-5},
                         seconds=12.5, skipped_steps=1)
    callback.on_train_end(result)
    run.finish("complete")

    client = tracker.client
    data = client.get_run(run.run_id).data
    history = client.get_metric_history(run.run_id, "train/loss")
    assert [m.step for m in history] == [5, 10, 15, 20, 25, 30, 35, 40, 41]
    assert history[1].value == pytest.approx(0.1)
    assert data.metrics["rank1"] == pytest.approx(0.61) and data.metrics["mAP"] == pytest.approx(0.4)
    assert [m.step for m in client.get_metric_history(run.run_id, "rank1")] == [30]
    assert data.metrics["train/seconds"] == 12.5 and data.metrics["train/skipped_steps"] == 1.0
    assert data.tags[TAG_CHECKPOINT] == (tmp_path / "out" / "ckpt-41.pt").as_posix()
    assert data.tags[TAG_CHECKPOINT_STEP] == "41"
    assert data.tags["workbench.train.status"] == "completed"
    assert data.params["train.parameters"] == "1234" and data.params["train.batch_size"] == "16"
    assert data.params["config.split"] == "[8, 32, 16, 8]" and data.params["tree_id"] == "abc"


def test_buffered_losses_survive_a_pruned_trial(tracking_uri: str, tmp_path: Path) -> None:
    run = StudyTracker(tracking_uri, "exp", "prune").start_trial(0)
    callback = MLflowTrainingCallback(run, log_every=2, flush_every=100)
    callback.on_train_start(_info(tmp_path))
    for step in range(1, 9):
        callback.on_step(step, {"loss": float(step)})
    # The pruner raises inside training; on_train_end never runs, the search layer finishes the run.
    run.finish("pruned")
    history = run.client.get_metric_history(run.run_id, "train/loss")
    assert [m.step for m in history] == [2, 4, 6, 8]
    assert run.client.get_run(run.run_id).data.tags["workbench.state"] == "pruned"


def test_resumed_training_logs_into_the_same_run_without_param_clashes(tracking_uri: str, tmp_path: Path) -> None:
    run = StudyTracker(tracking_uri, "exp", "resume").start_trial(0)
    MLflowTrainingCallback(run).on_train_start(_info(tmp_path))
    MLflowTrainingCallback(run).on_train_start(_info(tmp_path, start_step=20))
    tags = run.client.get_run(run.run_id).data.tags
    assert tags["workbench.train.start_step"] == "20"


def test_non_numeric_step_metrics_are_an_error(tracking_uri: str) -> None:
    run = StudyTracker(tracking_uri, "exp", "bad").start_trial(0)
    callback = MLflowTrainingCallback(run, log_every=1)
    with pytest.raises(TypeError, match="metric 'loss'"):
        callback.on_step(1, {"loss": "nan?"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="log_every"):
        MLflowTrainingCallback(run, log_every=0)
