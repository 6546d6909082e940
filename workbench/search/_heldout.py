"""The test step: after selection on validation subjects, score the chosen trials on the test subjects.

Nothing here writes to the Optuna study, so no test figure can reach the sampler or the pruner; the
figures go to each trial's folder (``test/``), to its MLflow run under ``test/`` and to the study's
report folder (``test.json``).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench.search._config import StudyConfig
from workbench.search._prepare import PreparedStudy
from workbench.tracking import SPLIT_FOLDERS

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class HeldOutTrial:
    """One trial's figures on validation (where it was selected) and on test (where it is reported)."""

    number: int
    tree: str
    cuts: list[int]
    validation: dict[str, float]
    test: dict[str, float]
    folder: Path

    def to_json(self) -> dict[str, Any]:
        clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in self.test.items()}
        return {"number": self.number, "tree": self.tree, "cuts": self.cuts, "validation": self.validation,
                "test": clean, "folder": str(self.folder)}


@dataclass(frozen=True)
class HeldOutReport:
    """What ``workbench study test`` prints and writes."""

    study_name: str
    metric: str
    n_test_subjects: int
    trials: list[HeldOutTrial] = field(default_factory=list)
    n_validation_subjects: int = 0

    def text(self) -> str:
        """Validation and test figures side by side, with their 95 % subject-bootstrap intervals."""
        m = self.metric
        width = max([len("tree"), *(len(t.tree) for t in self.trials)])  # discovered trees' names are long
        lines = [f"study {self.study_name}: {len(self.trials)} selected trial(s) scored on the held-out test "
                 f"subjects ({self.n_test_subjects}); selection used validation only",
                 f"{'trial':>5}  {'tree':<{width}} {'cuts':<10} {'validation ' + m:<26} {'test ' + m:<26}"]
        for t in self.trials:
            lines.append(f"{t.number:>5}  {t.tree:<{width}} {t.cuts!s:<10} "
                         f"{format_interval(t.validation, m):<26} {format_interval(t.test, m):<26}")
        lines.append("intervals: 95 % bootstrap over subjects (gallery fixed); a validation figure is the best of "
                     "many and biased upward, the test figure is not")
        if self.n_validation_subjects:
            lines.append(f"the galleries differ ({self.n_validation_subjects} validation against {self.n_test_subjects} "
                         "test subjects) and rank-1 falls as a gallery grows: compare configurations within a column")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {"study": self.study_name, "metric": self.metric, "n_test_subjects": self.n_test_subjects,
                "n_validation_subjects": self.n_validation_subjects, "trials": [t.to_json() for t in self.trials]}


def format_interval(summary: Mapping[str, float], key: str) -> str:
    """``91.82 [88.10, 94.95]``, or the value alone when the summary has no interval, or ``-``."""
    value = summary.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    low, high = summary.get(f"{key}_ci_low"), summary.get(f"{key}_ci_high")
    if low is None or high is None:
        return f"{value:.2f}"
    return f"{value:.2f} [{low:.2f}, {high:.2f}]"


def select_trials(study: optuna.Study, numbers: Sequence[int] | None = None, every: bool = False) -> list[FrozenTrial]:
    """The trials the report presents: the best trial (or the Pareto front), the listed ones, or all complete.

    Raises ``ValueError`` naming a listed trial that does not exist or did not complete.
    """
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ValueError(f"study {study.study_name}: no complete trial yet; run the study first")
    if numbers:
        by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
        chosen = []
        for n in numbers:
            trial = by_number.get(n)
            if trial is None or trial.state != TrialState.COMPLETE:
                state = "does not exist" if trial is None else f"is {trial.state.name.lower()}"
                raise ValueError(f"trial {n} {state}; only complete trials have a final model to test")
            chosen.append(trial)
        return chosen
    if every:
        return sorted(complete, key=lambda t: t.number)
    best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return sorted(best, key=lambda t: t.number)


def unreadable_test_files(data_path: Path, partition: Path) -> list[str]:
    """``path: reason`` for every test-subject file that does not load as a sequence."""
    from workbench.data import DataError, open_source

    source = open_source(data_path, partition=partition, subset="test")
    problems = []
    for index, record in enumerate(source.records):
        try:
            source.load(index)
        except (DataError, OSError, ValueError) as exc:
            problems.append(f"{record.paths[0] if record.paths else record.key}: {exc}")
    return problems


def _evaluate_folder(config: StudyConfig, prepared: PreparedStudy, folder: Path, number: int) -> Any:
    """The test result of the final model in one replicate folder (computed once, then read back)."""
    from workbench.evaluation import evaluate_model, has_saved_result, load_result
    from workbench.models import resolve_device
    from workbench.training import latest_checkpoint, load_for_inference

    out = folder / SPLIT_FOLDERS["test"]
    if has_saved_result(out):
        return load_result(out)
    checkpoint = latest_checkpoint(folder)
    if checkpoint is None:
        raise FileNotFoundError(f"trial {number}: no checkpoint in {folder}; its model cannot be tested")
    model, train_config = load_for_inference(checkpoint, "cpu")
    device = resolve_device(train_config.device)
    model.to(device)
    result, _ = evaluate_model(model, prepared.data_path, config.data.protocol, partition=prepared.test_partition,
                               batch_size=config.data.eval_batch_size, device=device,
                               frames=config.data.eval_frames, progress=False, amp=train_config.amp)
    result.save(out)
    return result


def evaluation_gpus(config: StudyConfig, workers: int) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` of each test-step worker: one GPU each in turn, however many ranks trained
    a model (one process evaluates it), and none where the study trains on the CPU."""
    from workbench.search._devices import visible_gpus, worker_gpus

    return worker_gpus(workers, None, visible_gpus() if config.train.device != "cpu" else [])


def _evaluate_in_workers(config: StudyConfig, prepared: PreparedStudy, jobs: Sequence[tuple[int, Path]],
                         workers: int) -> None:
    """Evaluate the final models of ``jobs`` (trial number, replicate folder) not yet scored, in up to
    ``workers`` spawned processes, one GPU or a share of the cores each; their saved results are read back
    afterwards. What a failed worker leaves is evaluated by the caller, in this process."""
    import multiprocessing as mp
    import os

    from workbench.evaluation import has_saved_result
    from workbench.search._devices import THREADS, usable_cores, worker_threads
    from workbench.search._runner import run_workers

    pending = [(n, f) for n, f in jobs if not has_saved_result(f / SPLIT_FOLDERS["test"])]
    workers = min(workers, len(pending))
    if workers < 2:
        return
    devices = evaluation_gpus(config, workers)
    threads = worker_threads(workers, usable_cores(), os.environ.get(THREADS))
    log.info("%d final model(s) to evaluate on the test subjects, in %d worker processes", len(pending), workers)
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_test_worker_main, name=f"test-worker-{i}",
                         args=(config, prepared, pending[i::workers], i, os.getpid()))
             for i in range(workers)]
    failed = run_workers(procs, devices, threads)  # stopped by Ctrl-C: what was saved stays
    if failed:
        log.warning("%s ended with an error; the models they left are evaluated here", ", ".join(failed))


def _test_worker_main(config: StudyConfig, prepared: PreparedStudy, jobs: Sequence[tuple[int, Path]], index: int,
                      parent: int) -> None:
    from workbench._process import follow_parent, sigterm_as_interrupt

    logging.basicConfig(level=logging.INFO, format=f"test worker {index} %(levelname)s %(name)s: %(message)s")
    follow_parent(parent)  # the command that spawned it is gone, even by SIGKILL: stop too
    try:
        with sigterm_as_interrupt(sigint_once=True):
            for number, folder in jobs:
                _evaluate_folder(config, prepared, folder, number)
                log.info("trial %d: %s evaluated on the test subjects", number, folder.name)
    except KeyboardInterrupt:
        log.warning("test worker %d stopped; what it saved stays, the rest is evaluated next time", index)
        raise SystemExit(1) from None


def evaluate_on_test(config: StudyConfig, prepared: PreparedStudy, trial: FrozenTrial) -> dict[str, float]:
    """The test figures of one complete trial: every seed's final model (fresh seeds from ``study replicate``
    included), aggregated like its validation figures."""
    from workbench.search._replicates import Replicate, replicate_scores, trial_seed_folders

    replicates = [Replicate(seed, folder, _evaluate_folder(config, prepared, folder, trial.number), None, 0.0, [])
                  for seed, folder in trial_seed_folders(trial, config).items()]
    return replicate_scores(replicates, config.objectives[0].metric)


def _validation_scores(config: StudyConfig, trial: FrozenTrial) -> dict[str, float]:
    from workbench.search._replicates import Replicate, replicate_scores
    from workbench.search._tree_report import replicate_results

    results = replicate_results(trial, config, "validation")
    seeds = trial.user_attrs.get("seeds") or [config.train.seed]
    if len(results) < len(seeds):
        return {}
    return replicate_scores([Replicate(s, Path(), r, None, 0.0, []) for s, r in results.items()],
                            config.objectives[0].metric)


def score_on_test(config: StudyConfig, prepared: PreparedStudy, study: optuna.Study, *,
                  numbers: Sequence[int] | None = None, every: bool = False, workers: int = 1) -> HeldOutReport:
    """Score the selected trials on the test subjects, log ``test/*`` to their MLflow runs, write ``test.json``.

    Every test file is loaded once first, so an unreadable file is reported by name before any model
    is evaluated (``ValueError`` listing them). Each final model is evaluated once and its result saved in
    its folder; ``workers`` > 1 evaluates them in that many processes on this machine (a GPU or a share of
    the cores each). The figures do not depend on ``workers``.
    """
    if workers < 1:
        raise ValueError(f"workers: {workers}; give 1 or more")
    from workbench.data import read_partition
    from workbench.search._objective import tracker_for
    from workbench.search._replicates import trial_folder
    from workbench.search._space import trial_choices, trial_cuts
    from workbench.tracking import TEST_METRIC_PREFIX

    trials = select_trials(study, numbers, every)
    problems = unreadable_test_files(prepared.data_path, prepared.test_partition)
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise ValueError(f"{len(problems)} test file(s) of {prepared.data_path} cannot be read; the chosen trials "
                         f"were not tested:\n  {shown}")
    metric = config.objectives[0].metric
    if workers > 1:
        from workbench.search._replicates import trial_seed_folders

        jobs = [(t.number, folder) for t in trials for folder in trial_seed_folders(t, config).values()]
        _evaluate_in_workers(config, prepared, jobs, workers)
    tracker = tracker_for(config)
    runs = _complete_runs(tracker)
    tested = []
    for trial in trials:
        scores = evaluate_on_test(config, prepared, trial)
        log_to_trial_run(tracker, runs.get(trial.number), trial.number, scores, TEST_METRIC_PREFIX)
        folder = trial_folder(trial, config)
        tested.append(HeldOutTrial(trial.number, str(trial_choices(trial).get("tree", "?")), trial_cuts(trial),
                                  _validation_scores(config, trial), scores, folder))
    n_test = len(read_partition(prepared.test_partition).test)
    n_validation = len(read_partition(prepared.split_path).test)
    report = HeldOutReport(config.study.name, metric, n_test, tested, n_validation)
    out = config.project_dir / "reports" / config.study.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "test.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return report


def _complete_runs(tracker: Any) -> dict[int, str]:
    from workbench.tracking import TAG_STATE, TAG_TRIAL

    runs: dict[int, str] = {}
    for run in tracker.trial_runs():  # sorted by trial, then start time: a retry's run wins
        if run.data.tags.get(TAG_STATE) == "complete":
            runs[int(run.data.tags.get(TAG_TRIAL, -1))] = run.info.run_id
    return runs


def log_to_trial_run(tracker: Any, run_id: str | None, number: int, scores: Mapping[str, float],
                     prefix: str) -> None:
    """Log a finished trial's later figures (test, confirmation) to its MLflow run under ``prefix``."""
    from workbench.tracking import TrialRun

    if run_id is None:
        return
    finite = {f"{prefix}{k}": float(v) for k, v in scores.items()
              if isinstance(v, int | float) and not math.isnan(float(v))}
    TrialRun(tracker.client, run_id, number, tracker.experiment_id).log_metrics(finite)
