"""Confirm winners: retrain the best configurations on fresh seeds, so a winner is confirmed, not selected.

The best of many noisy trials is biased upward: its figure was picked for being high. Training the
same configuration again on seeds the search never saw and scoring it on the same validation
subjects measures what it is worth; the gap between the two is the selection bias. Nothing here
writes to the Optuna study.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench._process import follow_parent, sigterm_as_interrupt
from workbench.search._config import StudyConfig
from workbench.search._heldout import _complete_runs, format_interval, log_to_trial_run
from workbench.search._prepare import PreparedStudy
from workbench.search._replicates import (
    Replicate,
    recorded_train_config,
    replicate_scores,
    train_replicates,
    trial_folder,
)
from workbench.tracking import confirm_folder

log = logging.getLogger(__name__)

CONFIRM_PREFIX = "confirm/"


@dataclass(frozen=True)
class Confirmation:
    """One configuration: its figure at selection, and on fresh seeds with a seed-and-subject interval."""

    number: int
    label: str
    selected: float
    seeds: list[int]
    confirmed: dict[str, float]
    key: str

    @property
    def gap(self) -> float:
        """Selection figure minus the fresh seeds' mean: the optimism of having picked it."""
        return self.selected - self.confirmed.get(self.key, math.nan)

    def to_json(self) -> dict[str, Any]:
        return {"number": self.number, "label": self.label, "selected": self.selected, "seeds": self.seeds,
                "confirmed": self.confirmed, "gap": self.gap}


@dataclass(frozen=True)
class ConfirmationReport:
    """What ``workbench study replicate`` prints and writes."""

    study_name: str
    key: str
    rows: list[Confirmation] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"study {self.study_name}: the {len(self.rows)} best configuration(s) retrained on fresh seeds, "
                 f"scored on the validation subjects ({self.key})",
                 f"{'trial':>5}  {'configuration':<34} {'at selection':>12}  {'fresh seeds [95 % CI]':<26} {'gap':>6}"]
        for r in self.rows:
            lines.append(f"{r.number:>5}  {r.label[:34]:<34} {r.selected:>12.2f}  "
                         f"{format_interval(r.confirmed, r.key):<26} {r.gap:>+6.2f}")
        lines.append("gap = figure at selection minus the fresh seeds' mean: how much picking the best flattered it")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study_name, "key": self.key, "rows": [r.to_json() for r in self.rows]}


def top_trials(study: optuna.Study, k: int, direction: str = "maximize") -> list[FrozenTrial]:
    """The ``k`` best complete trials by the first objective."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not complete:
        raise ValueError(f"study {study.study_name}: no complete trial yet; run the study first")
    ordered = sorted(complete, key=lambda t: t.values[0], reverse=direction == "maximize")
    return ordered[:k]


def fresh_seeds(config: StudyConfig, n: int) -> list[int]:
    """``n`` seeds the study's trials never trained on: after ``train.seed + budget.seeds - 1``."""
    start = config.train.seed + config.budget.seeds
    return list(range(start, start + n))


def confirm_trials(config: StudyConfig, prepared: PreparedStudy, study: optuna.Study, *, top: int = 1,
                   seeds: int = 3, every: bool = False, workers: int = 1, study_file: Path | None = None,
                   storage_url: str | None = None) -> ConfirmationReport:
    """Retrain the ``top`` best configurations (``every``: all complete ones) on ``seeds`` fresh seeds each.

    Resumable: seeds already trained are read back, so asking again with a larger ``seeds`` adds seeds.
    Fresh seeds count in the study's per-tree tables and its test step like the trial's own; they are
    logged under ``confirm/...`` to each trial's MLflow run, and the report goes to ``confirm.json``.
    With ``every`` (a tree comparison: every configuration is reported, none selected) the study's
    comparisons gain seeds without any selection on their figures. With ``workers`` > 1 (``study_file``
    and ``storage_url`` given) that many processes share the seeds, each taking the free ones, as the
    same command run in several terminals would; this process then collects every seed's figures.
    """
    from workbench.search._objective import tracker_for
    from workbench.search._report import trial_label

    if top < 1 or seeds < 1:
        raise ValueError(f"--top {top} --seeds {seeds}: give at least one configuration and one seed")
    objective = config.objectives[0]
    chosen = _chosen(study, top, every, objective.direction)
    new_seeds = fresh_seeds(config, seeds)
    if workers > 1:
        if study_file is None or storage_url is None:
            raise ValueError("several workers need the study file and the storage URL to open the study again")
        _train_in_workers(config, study_file, storage_url, top, seeds, every, workers)
    else:  # the seeds no other process holds first (the same command may run in another terminal)
        for _ in _train_fresh(config, prepared, chosen, new_seeds, wait=False):
            pass
    tracker = tracker_for(config)
    runs = _complete_runs(tracker)
    rows = []
    for trial, replicates in _train_fresh(config, prepared, chosen, new_seeds, wait=True):
        scores = replicate_scores(replicates, objective.metric)
        key = objective.metric if objective.metric in scores else f"{objective.metric}_mean"
        log_to_trial_run(tracker, runs.get(trial.number), trial.number, scores, CONFIRM_PREFIX)
        rows.append(Confirmation(trial.number, trial_label(trial), float(trial.values[0]), new_seeds, scores, key))
    report = ConfirmationReport(config.study.name, rows[0].key if rows else objective.metric, rows)
    out = config.project_dir / "reports" / config.study.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "confirm.json").write_text(json.dumps(report.to_json(), indent=2, default=float) + "\n")
    return report


def _chosen(study: optuna.Study, top: int, every: bool, direction: str) -> list[FrozenTrial]:
    if every:
        return sorted(top_trials(study, len(study.trials), direction), key=lambda t: t.number)
    return top_trials(study, top, direction)


def _train_fresh(config: StudyConfig, prepared: PreparedStudy, trials: list[FrozenTrial], new_seeds: list[int],
                 wait: bool) -> Iterator[tuple[FrozenTrial, list[Replicate]]]:
    """Each trial with its fresh seeds trained or read back (``wait`` false: only the seeds no other process holds)."""
    for trial in trials:
        folder = trial_folder(trial, config)
        train_config = recorded_train_config(config, prepared, trial, folder)
        yield trial, train_replicates(config, prepared, None, None, train_config, folder, seeds=new_seeds,
                                      folders=partial(confirm_folder, folder), wait=wait)


def _train_in_workers(config: StudyConfig, study_file: Path, storage_url: str, top: int, seeds: int,
                      every: bool, workers: int) -> None:
    """Spawn ``workers`` processes that train the free fresh seeds, one GPU or a share of the cores each."""
    import multiprocessing as mp
    import os

    from workbench.search._devices import (
        THREADS,
        study_worker_gpus,
        usable_cores,
        worker_threads,
    )
    from workbench.search._runner import run_workers

    devices = study_worker_gpus(config, workers)
    threads = worker_threads(workers, usable_cores(), os.environ.get(THREADS))
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_worker_main, name=f"replicate-worker-{i}",
                         args=(str(study_file), storage_url, str(config.project_dir), top, seeds, every, i,
                               os.getpid()))
             for i in range(workers)]
    failed = run_workers(procs, devices, threads)
    if failed:  # what they left is trained here, from the seeds' checkpoints
        log.warning("%s ended with an error; the seeds they held are trained here", ", ".join(failed))


def _worker_main(study_file: str, storage_url: str, project_dir: str, top: int, seeds: int, every: bool,
                 index: int, parent: int) -> None:
    from workbench.search._config import load_study_config
    from workbench.search._prepare import prepare_study
    from workbench.search._storage import open_storage

    logging.basicConfig(level=logging.INFO, format=f"replicate worker {index} %(levelname)s %(name)s: %(message)s")
    # The command that spawned this worker (``parent``) died without stopping it, perhaps before this
    # worker got here: stop too.
    follow_parent(parent)
    try:
        with sigterm_as_interrupt(sigint_once=True):
            config = load_study_config(study_file, project_dir=project_dir)
            study = optuna.load_study(study_name=config.study.name, storage=open_storage(storage_url))
            prepared = prepare_study(config, progress=False)
            chosen = _chosen(study, top, every, config.objectives[0].direction)
            for trial, done in _train_fresh(config, prepared, chosen, fresh_seeds(config, seeds), wait=False):
                log.info("trial %d: fresh seed(s) %s trained or read back", trial.number, [r.seed for r in done])
    except KeyboardInterrupt:
        log.warning("replicate worker %d stopped; its seed resumes from its last checkpoint next time", index)
        raise SystemExit(1) from None
