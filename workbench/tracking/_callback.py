"""``MLflowTrainingCallback``: the trainer's observer hooks, written to a trial's MLflow run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from workbench.config import flatten
from workbench.tracking._runs import TrialRun
from workbench.tracking._values import format_value, metric_value, numeric_items
from workbench.training import TrainInfo, TrainingCallback, TrainResult

TAG_CHECKPOINT = "workbench.checkpoint"
TAG_CHECKPOINT_STEP = "workbench.checkpoint_step"


class MLflowTrainingCallback(TrainingCallback):
    """Log a training run into a ``TrialRun``: cheap enough to leave on for every trial.

    Step metrics (loss, lr, throughput) are sampled every ``log_every`` steps under
    ``step_prefix`` and sent in one ``log_batch`` per ``flush_every`` sampled steps; evaluation
    metrics (rank-1 ...) go out at once under ``eval_prefix`` (a study's trials use ``val/``: they
    are scored on validation subjects), so pruning decisions and the MLflow UI agree.
    Checkpoint paths become tags; the buffer is flushed at evaluations, checkpoints, the end of
    training and when the trial run finishes (so a pruned trial keeps its last losses).

    Args:
        trial_run: the trial's run from ``StudyTracker.start_trial``.
        log_every: sample step metrics at every ``log_every``-th step.
        flush_every: sampled steps per ``log_batch`` call.
        step_prefix: prefix of step metric names (``train/loss``).
        log_config: log ``info.config`` flattened as ``config.*`` params at the start.
        eval_prefix: prefix of evaluation metric names (empty: ``rank1``; ``"val/"``: ``val/rank1``).
    """

    def __init__(self, trial_run: TrialRun, log_every: int = 10, flush_every: int = 20,
                 step_prefix: str = "train/", log_config: bool = True, eval_prefix: str = "") -> None:
        if log_every < 1 or flush_every < 1:
            raise ValueError(f"log_every and flush_every must be >= 1, got {log_every} and {flush_every}")
        self.run = trial_run
        self.log_every = log_every
        self.flush_every = flush_every
        self.step_prefix = step_prefix
        self.log_config = log_config
        self.eval_prefix = eval_prefix
        self._pending: list[tuple[str, float, int]] = []
        self._pending_steps = 0
        self._last_logged_step = -1
        trial_run.add_flush_hook(self.flush)

    def flush(self) -> None:
        """Send buffered step metrics now."""
        if self._pending:
            entries, self._pending, self._pending_steps = self._pending, [], 0
            self.run.log_metric_entries(entries)

    def _existing_params(self) -> set[str]:
        return set(self.run.client.get_run(self.run.run_id).data.params)

    def on_train_start(self, info: TrainInfo) -> None:
        """Record what the run is about to do: sizes as params, where and how as tags."""
        params: dict[str, Any] = {
            "train.iterations": info.iterations,
            "train.batch_size": info.batch_size,
            "train.num_classes": info.num_classes,
            "train.parameters": info.parameters,
        }
        if self.log_config and info.config is not None:
            config = info.config
            if dataclasses.is_dataclass(config) or isinstance(config, Mapping):
                params.update({f"config.{k}": v for k, v in _readable_config(flatten(config)).items()})
        # A resumed trial logs into the same run again; params are write-once, so send only new keys.
        existing = self._existing_params()
        fresh = {k: v for k, v in params.items() if k not in existing}
        if fresh:
            self.run.log_params(fresh)
        self.run.set_tags({
            "workbench.train.output_dir": Path(info.output_dir),
            "workbench.train.device": info.device,
            "workbench.train.world_size": info.world_size,
            "workbench.train.start_step": info.start_step,
        })

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Buffer every ``log_every``-th step's metrics; flush every ``flush_every`` of them."""
        if step % self.log_every != 0:
            return
        for key, value in metrics.items():
            self._pending.append((f"{self.step_prefix}{key}", metric_value(key, value), step))
        self._pending_steps += 1
        self._last_logged_step = step
        if self._pending_steps >= self.flush_every:
            self.flush()

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Log evaluation metrics (rank-1, mAP ...) at ``step`` under ``eval_prefix``."""
        self.flush()
        self.run.log_metrics({f"{self.eval_prefix}{k}": v for k, v in numeric_items(metrics).items()}, step=step)

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Tag the run with the latest checkpoint path and step."""
        self.flush()
        self.run.set_tags({TAG_CHECKPOINT: Path(path), TAG_CHECKPOINT_STEP: step})

    def on_train_end(self, result: TrainResult) -> None:
        """Log the last step's metrics, run time and status; tag the final checkpoint."""
        entries = []
        if result.step != self._last_logged_step:
            entries = [(f"{self.step_prefix}{k}", v, result.step)
                       for k, v in numeric_items(result.last_metrics).items()]
        entries.append((f"{self.step_prefix}seconds", float(result.seconds), result.step))
        entries.append((f"{self.step_prefix}skipped_steps", float(result.skipped_steps), result.step))
        self._pending.extend(entries)
        self.flush()
        tags: dict[str, Any] = {"workbench.train.status": result.status,
                                "workbench.train.final_step": result.step}
        if result.checkpoint is not None:
            tags[TAG_CHECKPOINT] = format_value(Path(result.checkpoint))
            tags[TAG_CHECKPOINT_STEP] = result.step
        self.run.set_tags(tags)


def _readable_config(flat: dict[str, Any]) -> dict[str, Any]:
    """The flat config as a reader wants it: a tree file by its name, no synthetic preset that was not used."""
    from workbench.training import BUILTIN_DATA

    out = dict(flat)
    if out.get("data.path") != BUILTIN_DATA:
        out.pop("data.synthetic", None)  # only read when the run renders the built-in set
    tree = out.get("model.tree")
    if isinstance(tree, str) and tree.endswith(".json"):
        out["model.tree"] = Path(tree).stem  # the file (named after the tree) is an artifact of the run
    return out
