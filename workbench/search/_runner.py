"""Run a study: prepare data and trees once, then one or more workers ask, train, evaluate and tell."""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from workbench.search._config import StudyConfig, load_study_config
from workbench.search._heartbeat import Heartbeat, count_trials, reap_stale_trials
from workbench.search._prepare import PreparedStudy, prepare_study
from workbench.search._storage import default_storage_url, journal_path, normalise_url, open_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSummary:
    """How the study stands after a ``study run``."""

    study_name: str
    storage_url: str
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int
    best: list[dict[str, object]]
    stopped: str = ""


def choose_storage_url(config: StudyConfig, project_dir: Path, cli_url: str | None, workers: int) -> str:
    """The storage URL: the CLI's, else the study file's, else SQLite (one worker) or a journal (several)."""
    url = cli_url or config.storage.url
    if url:
        url = normalise_url(url, project_dir)
        if url.startswith("sqlite:") and workers > 1:
            raise ValueError(
                f"storage {url} is SQLite, which is for one process; with --workers {workers} use "
                f"journal:{journal_path(project_dir, config.study.name)} (one machine) or a PostgreSQL URL"
            )
        return url
    journal = journal_path(project_dir, config.study.name)
    if workers > 1 or journal.exists():
        return f"journal:{journal}"
    return default_storage_url(project_dir)


def grid_space(config: StudyConfig, candidates: Sequence[str]) -> dict[str, list[Any]]:
    """Every choice of the search space as Optuna's ``GridSampler`` takes it (the learning rate must be fixed)."""
    from workbench.search._space import channels_key

    space = config.space
    if space.lr[0] != space.lr[1]:
        raise ValueError(f"sampler.name = 'grid' needs one learning rate; space.lr is a range {list(space.lr)}")
    grid: dict[str, list[Any]] = {"tree": list(candidates)}
    if space.models:
        grid["model"] = list(space.models)
    for i, ks in enumerate(space.stage_cuts):
        grid[f"cut_stage{i + 2}"] = list(ks)
    grid["channels"] = [channels_key(c) for c in space.channels]
    grid["frames"] = list(space.frames)
    grid["fta"] = list(space.fta)
    return grid


class _BudgetedGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler in an ask-and-tell loop: the trial budget ends the study, not ``study.stop()``
    (which Optuna only allows inside ``optimize``)."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def check_grid_budget(config: StudyConfig, candidates: Sequence[str], budget: int) -> None:
    """A grid study's budget must not exceed its grid (extra trials would repeat combinations)."""
    if config.sampler.name != "grid":
        return
    size = 1
    for values in grid_space(config, candidates).values():
        size *= len(values)
    if budget > size:
        raise ValueError(f"budget.trials = {budget} but the grid has {size} combinations; set budget.trials = "
                         f"{size} (replicate configurations with budget.seeds instead)")


def create_sampler(config: StudyConfig, worker_index: int = 0,
                   candidates: Sequence[str] = ()) -> optuna.samplers.BaseSampler:
    """The study's sampler; each worker gets its own seed so workers do not propose the same points.

    ``grid`` runs every combination of ``candidates`` (tree names) and the space once, in a seeded order.
    """
    s = config.sampler
    seed = s.seed + worker_index
    if s.name == "grid":
        return _BudgetedGridSampler(grid_space(config, candidates), seed=seed)
    if s.name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if s.name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if s.name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=s.startup_trials)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.startup_trials, multivariate=True)


def create_pruner(config: StudyConfig) -> optuna.pruners.BasePruner:
    """Median or Hyperband on intermediate rank-1; none for multi-objective studies (Optuna cannot prune them)."""
    p = config.pruner
    if config.multi_objective or p.name == "none":
        return optuna.pruners.NopPruner()
    if p.name == "threshold":
        return optuna.pruners.ThresholdPruner(lower=p.lower, upper=p.upper, n_warmup_steps=p.warmup_steps)
    if p.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(1, config.budget.eval_every),
                                              max_resource=config.budget.iterations)
    return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials, n_warmup_steps=p.warmup_steps)


def open_study(config: StudyConfig, storage_url: str, worker_index: int = 0,
               prepared: PreparedStudy | None = None) -> optuna.Study:
    """Create the study or load it when the name already exists (so a run resumes where it stopped)."""
    names = [c.name for c in prepared.candidates] if prepared is not None else []
    return optuna.create_study(
        study_name=config.study.name,
        storage=open_storage(storage_url),
        directions=config.directions,
        sampler=create_sampler(config, worker_index, names),
        pruner=create_pruner(config),
        load_if_exists=True,
    )


def _should_start(study: optuna.Study, budget: int) -> bool:
    counts = count_trials(study)
    if counts[TrialState.WAITING]:
        return True  # a queued retry stands in for a failed trial and must run
    done = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
    return done + counts[TrialState.RUNNING] < budget


def failure_stop(study: optuna.Study, max_failed: int, since: int = 0) -> str:
    """Why the study must stop for its failures, or ``""``.

    Among the trials numbered ``since`` or later (this run's): ``max_failed`` failed, or the last two
    failures ended with the same error (a mistake every trial will repeat). Trials failed for a lost
    worker are retried, not counted; a retry that fails counts once. Failures of an earlier run are
    not held against a resumed study: fixing the cause and running again continues it.
    """
    failed = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                     if "error" in t.user_attrs and t.number >= since), key=lambda t: t.number)
    if not failed:
        return ""
    last = failed[-1].user_attrs["error"]
    if max_failed and len(failed) >= max_failed:
        return (f"{len(failed)} trials failed (budget.max_failed = {max_failed}); the last one: {last}. "
                "Fix the cause and run the same command again to continue")
    if len(failed) >= 2 and failed[-2].user_attrs["error"] == last:
        return (f"trials {failed[-2].number} and {failed[-1].number} failed with the same error: {last}. "
                "Fix the cause and run the same command again to continue")
    return ""


def worker_loop(config: StudyConfig, prepared: PreparedStudy, storage_url: str, n_trials: int,
                worker_index: int = 0, deadline: float | None = None, since: int = 0) -> int:
    """Ask-train-tell until the budget is reached, the deadline passes or no work is left; returns trials run."""
    from workbench.search._objective import TrialOutcome, mark_lost_trials, run_trial

    study = open_study(config, storage_url, worker_index, prepared)
    ran = 0
    while True:
        mark_lost_trials(config, reap_stale_trials(study, grace=config.storage.grace_seconds).failed)
        if deadline is not None and time.time() >= deadline:
            log.info("worker %d: time budget reached", worker_index)
            break
        if not _should_start(study, n_trials):
            break
        reason = failure_stop(study, config.budget.max_failed, since)
        if reason:
            log.error("worker %d: study stopped: %s", worker_index, reason)
            break
        trial = study.ask()
        started = time.time()
        log.info("trial %d started (worker %d)", trial.number, worker_index)
        with Heartbeat(study, trial._trial_id, interval=config.storage.heartbeat_seconds):
            outcome: TrialOutcome = run_trial(config, prepared, study, trial)
        values = ", ".join(f"{o.metric}={v:.4g}" for o, v in zip(config.objectives, outcome.values, strict=False))
        log.info("trial %d %s in %.0f s%s", trial.number, outcome.state.name.lower(), time.time() - started,
                 f": {values}" if values else "")
        try:
            if outcome.state == TrialState.COMPLETE:
                study.tell(trial, outcome.values)
            else:
                study.tell(trial, state=outcome.state)
        except optuna.exceptions.UpdateFinishedTrialError:
            log.warning("trial %d was taken over by another worker while it ran; its result is dropped",
                        trial.number)
        ran += 1
    return ran


def _worker_main(study_file: str, storage_url: str, n_trials: int, worker_index: int,
                 deadline: float | None, project_dir: str, since: int = 0) -> None:
    logging.basicConfig(level=logging.INFO, format=f"worker {worker_index} %(levelname)s %(name)s: %(message)s")
    config = load_study_config(study_file, project_dir=project_dir)
    prepared = prepare_study(config, progress=False)
    worker_loop(config, prepared, storage_url, n_trials, worker_index, deadline, since)


def run_study(study_file: str | Path, *, storage_url: str | None = None, n_trials: int | None = None,
              workers: int = 1, project_dir: str | Path | None = None,
              on_prepared: Callable[[PreparedStudy], None] | None = None) -> RunSummary:
    """Run (or resume) the study in ``study_file`` until its trial budget is met."""
    config = load_study_config(study_file, project_dir=project_dir)
    project = config.project_dir
    url = choose_storage_url(config, project, storage_url, workers)
    budget = n_trials or config.budget.trials
    open_storage(url)  # a dead or wrong storage fails here, before any data is rendered
    prepared = prepare_study(config, progress=True)
    check_grid_budget(config, [c.name for c in prepared.candidates], budget)
    if on_prepared is not None:
        on_prepared(prepared)
    study = open_study(config, url, prepared=prepared)
    study.set_user_attr("study_file", str(Path(study_file).resolve()))
    since = len(study.get_trials(deepcopy=False))  # failures of earlier runs are not held against this one
    from workbench.search._objective import tracker_for

    tracker_for(config)  # creates the MLflow store and the study's parent run before any worker starts
    deadline = None
    if config.budget.timeout_minutes:
        deadline = time.time() + 60.0 * config.budget.timeout_minutes
    if workers <= 1:
        worker_loop(config, prepared, url, budget, 0, deadline, since)
    else:
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(target=_worker_main, name=f"study-worker-{i}",
                        args=(str(study_file), url, budget, i, deadline, str(project), since))
            for i in range(workers)
        ]
        for proc in procs:
            proc.start()
        try:
            for proc in procs:
                proc.join()
        except KeyboardInterrupt:
            for proc in procs:
                proc.terminate()
            raise
        # A worker that died mid-trial leaves a RUNNING trial: reap it and finish the budget here.
        worker_loop(config, prepared, url, budget, workers, deadline, since)
    summary = summarise(config, url, since)
    log_study_to_tracking(config, study, summary)
    return summary


def log_study_to_tracking(config: StudyConfig, study: optuna.Study, summary: RunSummary) -> Path:
    """Write the report (figures, JSON) and log it with the best values and counts on the study's parent run."""
    from workbench.search._objective import tracker_for
    from workbench.search._report import build_report

    metrics = [o.metric for o in config.objectives]
    out = config.project_dir / "reports" / config.study.name
    report = build_report(study, metrics, out, config=config)
    tracker = tracker_for(config)
    best: dict[str, float] = {}
    if report.best:
        for i, metric in enumerate(metrics):
            values = [row["values"][i] for row in report.best]
            pick = max if config.objectives[i].direction == "maximize" else min
            best[metric] = float(pick(values))
    tracker.log_study_summary(best, summary.complete, summary.pruned, summary.failed)
    tracker.log_study_artifact(out)
    return out


def summarise(config: StudyConfig, storage_url: str, since: int = 0) -> RunSummary:
    """Trial counts and the best trials (or the Pareto front) of a study."""
    study = optuna.load_study(study_name=config.study.name, storage=open_storage(storage_url))
    counts = count_trials(study)
    best = []
    if counts[TrialState.COMPLETE]:
        for t in study.best_trials if config.multi_objective else [study.best_trial]:
            best.append({"number": t.number, "values": t.values, "params": t.params})
    return RunSummary(
        stopped=failure_stop(study, config.budget.max_failed, since),
        study_name=config.study.name,
        storage_url=storage_url,
        complete=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL],
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        best=best,
    )
