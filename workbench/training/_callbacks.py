"""The observer interface of the training loop, plus the progress bar and the JSON-lines log."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from tqdm.auto import tqdm


@dataclass(frozen=True)
class TrainInfo:
    """What a run is about to do; given to ``on_train_start``."""

    config: Any
    output_dir: Path
    start_step: int
    iterations: int
    num_classes: int
    parameters: int
    device: str
    world_size: int
    batch_size: int


@dataclass(frozen=True)
class TrainResult:
    """How a run ended; given to ``on_train_end`` and returned by ``Trainer.fit``.

    ``status`` is ``"completed"``, or ``"stopped"`` on a non-zero rank when rank 0 stopped the run.
    """

    status: str
    step: int
    output_dir: Path
    checkpoint: Path | None
    last_metrics: dict[str, float] = field(default_factory=dict)
    evaluations: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    skipped_steps: int = 0
    seconds: float = 0.0


class TrainingCallback:
    """Base class for training observers (logging, tracking, pruning); every hook is a no-op here.

    Hooks run on rank 0 only. An exception raised by a hook stops training and propagates out of
    ``Trainer.fit``; checkpoints are written atomically before the hooks of their step run, so the
    latest checkpoint on disk is always complete and resumable. Override what you need:

    - ``on_train_start(info)``: once, after a resume has been applied.
    - ``on_step(step, metrics)``: after every optimisation step (``loss``, ``lr``, ``sequences_per_second``...).
    - ``on_evaluation(step, metrics)``: after the injected evaluator ran.
    - ``on_checkpoint(step, path)``: after a checkpoint has been written.
    - ``on_train_end(result)``: once, when the last step is done.
    """

    def on_train_start(self, info: TrainInfo) -> None:
        """Called once before the first step."""

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Called after each optimisation step."""

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Called after each evaluation."""

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Called after each checkpoint write."""

    def on_train_end(self, result: TrainResult) -> None:
        """Called once after the last step."""


class CallbackList(TrainingCallback):
    """Fan one hook call out to several callbacks, in order."""

    def __init__(self, callbacks: Iterable[TrainingCallback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_start(self, info: TrainInfo) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_train_start(info)

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_step(step, metrics)

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_evaluation(step, metrics)

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_checkpoint(step, path)

    def on_train_end(self, result: TrainResult) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            cb.on_train_end(result)


def _short(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


class ProgressBar(TrainingCallback):
    """A tqdm bar: loss, sequences/second, the latest rank-1 (or first) evaluation metrics, ETA."""

    def __init__(self, file: TextIO | None = None, disable: bool | None = None) -> None:
        self._file = file
        self._disable = disable
        self._bar: Any = None
        self._eval: dict[str, str] = {}
        self._step: dict[str, str] = {}

    def on_train_start(self, info: TrainInfo) -> None:
        """Open the bar at the resumed step."""
        self._bar = tqdm(total=info.iterations, initial=info.start_step, desc="train", unit="it",
                         file=self._file, disable=self._disable, dynamic_ncols=True)

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Advance one step and refresh the postfix."""
        if self._bar is None:
            return
        self._step = {"loss": _short(metrics.get("loss", math.nan))}
        if "sequences_per_second" in metrics:
            self._step["seq/s"] = f"{metrics['sequences_per_second']:.1f}"
        self._bar.set_postfix({**self._step, **self._eval}, refresh=False)
        self._bar.update(step - self._bar.n)

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Show rank-1 style metrics (or the first two) until the next evaluation."""
        shown = [k for k in metrics if "rank1" in k.lower().replace("-", "").replace("_", "")] or list(metrics)[:2]
        self._eval = {k: _short(float(metrics[k])) for k in shown}
        if self._bar is not None:
            # Keep the latest loss and throughput beside the new evaluation figures.
            self._bar.set_postfix({**self._step, **self._eval})

    def on_train_end(self, result: TrainResult) -> None:
        """Close the bar."""
        self.close()

    def close(self) -> None:
        """Close the bar if open (also used when training stops with an error)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


#: The file in a run's folder where ``JsonLinesLog`` writes (what ``training_seconds`` reads).
TRAINING_LOG = "metrics.jsonl"


class JsonLinesLog(TrainingCallback):
    """Append step metrics (every ``every`` steps), evaluations and checkpoints to ``metrics.jsonl``,
    between a ``start`` and an ``end`` record per run (a resumed run appends a run of its own)."""

    def __init__(self, path: str | Path, every: int = 10) -> None:
        self.path = Path(path)
        self.every = max(1, every)

    def _write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record["time"] = time.time()
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def on_train_start(self, info: TrainInfo) -> None:
        """Mark where this run starts (its time is what ``training_seconds`` counts from)."""
        self._write({"event": "start", "step": info.start_step})

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        """Log every ``every``-th step."""
        if step % self.every == 0:
            self._write({"event": "step", "step": step, **{k: float(v) for k, v in metrics.items()}})

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        """Log every evaluation."""
        self._write({"event": "evaluation", "step": step, **{k: float(v) for k, v in metrics.items()}})

    def on_checkpoint(self, step: int, path: Path) -> None:
        """Log every checkpoint path."""
        self._write({"event": "checkpoint", "step": step, "path": str(path)})

    def on_train_end(self, result: TrainResult) -> None:
        """Log how the run ended and the seconds it took."""
        self._write({"event": "end", "step": result.step, "status": result.status, "seconds": float(result.seconds)})


def _records(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a killed process
        if isinstance(record, dict):
            yield record


def logged_evaluations(log: str | Path) -> dict[int, dict[str, float]]:
    """Step -> figures of every evaluation recorded in ``log`` (a run's ``metrics.jsonl``), in step order;
    where a resumed run evaluated a step again, its later figures. Empty when there is no log."""
    path = Path(log)
    if not path.is_file():
        return {}
    found: dict[int, dict[str, float]] = {}
    for record in _records(path):
        if record.get("event") == "evaluation" and isinstance(record.get("step"), int):
            found[record["step"]] = {k: float(v) for k, v in record.items()
                                     if k not in ("event", "step", "time") and isinstance(v, int | float)}
    return dict(sorted(found.items()))


def training_seconds(log: str | Path) -> float | None:
    """Wall-clock seconds the runs recorded in ``log`` (a run's ``metrics.jsonl``) spent training,
    evaluations during training included: each run from its ``start`` to its ``end`` record, a run
    killed before its end to its last record, so every resumed part counts once. Records written
    before runs marked their start count as one run from the first record to the last. ``None``
    when there is no log or no record in it.
    """
    path = Path(log)
    if not path.is_file():
        return None
    timed = [record for record in _records(path) if isinstance(record.get("time"), (int, float))]
    if not timed:
        return None
    total, began, last = 0.0, None, None
    for record in timed:
        when = record["time"]
        if record.get("event") == "start" or began is None:
            if began is not None:
                total += last - began  # the previous run ended without an end record
            began = when
        last = when
        if record.get("event") == "end":
            total += float(record.get("seconds", when - began))
            began = None
    if began is not None:
        total += last - began
    return total
