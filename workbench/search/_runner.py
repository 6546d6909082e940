"""Run a study: prepare data and trees once, then one or more workers ask, train, evaluate and tell."""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from workbench._process import follow_parent, sigterm_as_interrupt, terminate_then_kill
from workbench.search._config import StudyConfig, load_study_config
from workbench.search._devices import (
    THREADS,
    VISIBLE,
    start_workers,
    study_worker_gpus,
    usable_cores,
    worker_threads,
)
from workbench.search._heartbeat import Heartbeat, count_trials, reap_stale_trials
from workbench.search._prepare import PreparedStudy, prepare_study
from workbench.search._replicates import help_running_trial
from workbench.search._sampling import DUPLICATE_OF_KEY, check_grid_budget, count_repeats, create_sampler
from workbench.search._space import trial_choices
from workbench.search._storage import default_storage_url, journal_path, normalise_url, open_storage
from workbench.search._study_tracking import describe_study, log_study_to_tracking

log = logging.getLogger(__name__)

#: A worker stops after this many proposals in a row repeated a trial (the space is used up).
MAX_REPEATED_PROPOSALS = 50
#: Seconds an idle worker waits before looking again at a trial that has not yet recorded its folder.
HELP_POLL_SECONDS = 2.0

#: Seconds a stopped worker gets to close its trial's runs before it is killed.
WORKER_STOP_GRACE_SECONDS = 60.0

#: Exit status of a worker stopped by SIGTERM or Ctrl-C (its trial is left to be resumed).
WORKER_STOPPED = 130


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
    skipped: int = 0
    tracking_uri: str = ""
    experiment_id: str = ""


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


def open_study(config: StudyConfig, storage_url: str, prepared: PreparedStudy | None = None) -> optuna.Study:
    """Create the study or load it when the name already exists (so a run resumes where it stopped)."""
    names = [c.name for c in prepared.candidates] if prepared is not None else []
    study = optuna.create_study(
        study_name=config.study.name,
        storage=open_storage(storage_url),
        directions=config.directions,
        sampler=create_sampler(config, names),
        pruner=create_pruner(config),
        load_if_exists=True,
    )
    names_now = [o.metric for o in config.objectives]
    if study.metric_names != names_now:  # optuna-dashboard names the objectives instead of "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names_now)
    return study


#: Study system attribute: candidate tree name -> tree id, as the first process prepared them.
CANDIDATES_KEY = "workbench:candidates"


def check_shared_candidates(study: optuna.Study, prepared: PreparedStudy) -> None:
    """Record the study's candidate trees in its storage, or check them against the record.

    Processes on several machines each prepare the study in their own project directory. A tree
    discovered on one machine could differ from the same discovery on another (other data, other
    settings, floating point), and trials would then train different trees under one name. The
    first process records name -> tree id; every later one must match it for the names both have
    (trees added to the study file later are recorded as they come).
    """
    mine = {c.name: c.tree.tree_id for c in prepared.candidates}
    storage = study._storage
    recorded = storage.get_study_system_attrs(study._study_id).get(CANDIDATES_KEY)
    if recorded is None:
        storage.set_study_system_attr(study._study_id, CANDIDATES_KEY, mine)
        return
    differ = sorted(name for name in set(mine) & set(recorded) if mine[name] != recorded[name])
    added = {name: tree_id for name, tree_id in mine.items() if name not in recorded}
    if added and not differ:  # a study extended with more trees records them too
        storage.set_study_system_attr(study._study_id, CANDIDATES_KEY, {**recorded, **added})
    if differ:
        raise ValueError(
            f"study {study.study_name}: the candidate trees prepared here differ from those its first process "
            f"recorded ({', '.join(differ)}: here {[mine.get(n) for n in differ]}, recorded "
            f"{[recorded.get(n) for n in differ]}); copy the first machine's PROJECT/hierarchies/ and "
            "PROJECT/splits/ here (or share the project directory), or start a new study name"
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


def repeats_stop(study: optuna.Study) -> str:
    """Why the study stopped for repeated proposals (its latest trials all repeated others), or ``""``."""
    latest = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)[-MAX_REPEATED_PROPOSALS:]
    if len(latest) < MAX_REPEATED_PROPOSALS or not all(DUPLICATE_OF_KEY in t.user_attrs for t in latest):
        return ""
    return (f"the last {MAX_REPEATED_PROPOSALS} proposals repeated configurations that trials already hold: "
            "the search space has (almost) no configuration left; lower budget.trials or widen [space]")


def worker_loop(config: StudyConfig, prepared: PreparedStudy, storage_url: str, n_trials: int,
                worker_index: int = 0, deadline: float | None = None, since: int = 0) -> int:
    """Ask-train-tell until the budget is reached, the deadline passes or no work is left; returns trials run."""
    from workbench.search._objective import TrialResult, mark_lost_trials, run_trial
    from workbench.training import release_memory

    study = open_study(config, storage_url, prepared)
    ran = 0
    repeats = 0  # proposals in a row that repeated a trial holding their configuration
    while True:
        mark_lost_trials(config, reap_stale_trials(study, grace=config.storage.grace_seconds).failed)
        if deadline is not None and time.time() >= deadline:
            log.info("worker %d: time budget reached", worker_index)
            break
        if not _should_start(study, n_trials):
            # No trial left to start: take a seed of a running trial instead of sitting idle.
            helped = help_running_trial(config, prepared, study)
            if helped == "trained":
                release_memory()
                continue
            if helped == "wait":
                time.sleep(HELP_POLL_SECONDS)
                continue
            break
        reason = failure_stop(study, config.budget.max_failed, since)
        if reason:
            log.error("worker %d: study stopped: %s", worker_index, reason)
            break
        if repeats >= MAX_REPEATED_PROPOSALS:
            log.error("worker %d: study stopped: %s", worker_index, repeats_stop(study) or
                      f"{repeats} proposals in a row repeated trials")
            break
        trial = study.ask()
        started = time.time()
        with Heartbeat(study, trial._trial_id, interval=config.storage.heartbeat_seconds):
            outcome: TrialResult = run_trial(config, prepared, study, trial)
        if outcome.duplicate_of is not None:
            log.info("trial %d repeats trial %d's configuration; skipped (worker %d)", trial.number,
                     outcome.duplicate_of, worker_index)
            study.tell(trial, state=TrialState.FAIL)
            repeats += 1
            continue
        repeats = 0
        # The finished trial's model, optimizer state and cached GPU blocks go now: a seed that trained to
        # the end released its own, but a pruned or failed one's came free only as run_trial handled its
        # exception.
        release_memory()
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
                 deadline: float | None, project_dir: str, since: int, parent: int) -> None:
    logging.basicConfig(level=logging.INFO, format=f"worker {worker_index} %(levelname)s %(name)s: %(message)s")
    # The command that spawned this worker (``parent``) died without stopping it, perhaps before this
    # worker got here: stop too.
    follow_parent(parent)
    try:
        # Stopped by the command (SIGTERM), a scheduler or the terminal's Ctrl-C: end the trial's run cleanly.
        with sigterm_as_interrupt(sigint_once=True):
            config = load_study_config(study_file, project_dir=project_dir)
            prepared = prepare_study(config, progress=False)
            worker_loop(config, prepared, storage_url, n_trials, worker_index, deadline, since)
    except KeyboardInterrupt as exc:
        log.warning("worker %d stopped (%s); its trial resumes from its last checkpoint on the next `study run`",
                    worker_index, exc or "interrupted")
        raise SystemExit(WORKER_STOPPED) from None


def run_study(study_file: str | Path, *, storage_url: str | None = None, n_trials: int | None = None,
              workers: int = 1, project_dir: str | Path | None = None,
              on_prepared: Callable[[PreparedStudy], None] | None = None,
              gpus: Sequence[int] | None = None) -> RunSummary:
    """Run (or resume) the study in ``study_file`` until its trial budget is met.

    With several ``workers`` on a machine with GPUs, each worker trains on one GPU (``gpus`` chooses
    which, see ``workbench.search._devices``), or on ``train.nproc_per_node`` GPUs of its own when each
    trial trains as that many DDP ranks.
    """
    config = load_study_config(study_file, project_dir=project_dir)
    project = config.project_dir
    url = choose_storage_url(config, project, storage_url, workers)
    budget = n_trials or config.budget.trials
    # A GPU that is not there, or too few for the trials' ranks, fails before any work. A CPU run's
    # ranks take no GPU.
    devices = study_worker_gpus(config, workers, gpus)
    open_storage(url)  # a dead or wrong storage fails here, before any data is rendered
    prepared = prepare_study(config, progress=True)
    check_grid_budget(config, [c.name for c in prepared.candidates], budget)
    if on_prepared is not None:
        on_prepared(prepared)
    study = open_study(config, url, prepared=prepared)
    check_shared_candidates(study, prepared)
    study.set_user_attr("study_file", str(Path(study_file).resolve()))
    since = len(study.get_trials(deepcopy=False))  # failures of earlier runs are not held against this one
    from workbench.search._objective import tracker_for

    # The MLflow store and the study's parent run exist before any worker starts.
    tracker = tracker_for(config)
    describe_study(tracker, config, Path(study_file), prepared)
    deadline = None
    if config.budget.timeout_minutes:
        deadline = time.time() + 60.0 * config.budget.timeout_minutes
    try:
        _work(config, prepared, url, budget, devices, deadline, since, Path(study_file), project)
    except KeyboardInterrupt:
        tracker.finish("KILLED")
        raise
    summary = dataclasses.replace(summarise(config, url, since), tracking_uri=tracker.tracking_uri,
                                  experiment_id=str(tracker.experiment_id))
    log_study_to_tracking(config, study, summary)
    return summary


def _work(config: StudyConfig, prepared: PreparedStudy, url: str, budget: int, devices: list[str | None],
          deadline: float | None, since: int, study_file: Path, project: Path) -> None:
    """Run the worker loop here, or in one spawned process per entry of ``devices`` (each seeing the GPU
    named there) and then here for what they left."""
    workers = len(devices)
    if workers <= 1:
        if devices and devices[0] is not None:
            # Before this process first touches CUDA (trials build their models later).
            os.environ[VISIBLE] = devices[0]
            log.info("worker 0 trains on GPU(s) %s", devices[0])
        worker_loop(config, prepared, url, budget, 0, deadline, since)
    else:
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(target=_worker_main, name=f"study-worker-{i}",
                        args=(str(study_file), url, budget, i, deadline, str(project), since, os.getpid()))
            for i in range(workers)
        ]
        cores = usable_cores()
        threads = worker_threads(workers, cores, os.environ.get(THREADS))
        if threads is None:
            log.info("%d workers, %s CPU threads each (OMP_NUM_THREADS)", workers, os.environ[THREADS])
        else:
            log.info("%d workers share %d CPU cores: %d thread(s) each", workers, cores, threads)
        if config.train.nproc_per_node > 1:
            log.info("each trial trains as %d DDP ranks, which share their worker's threads",
                     config.train.nproc_per_node)
        for i, device in enumerate(devices):
            if device is not None:
                log.info("worker %d trains on GPU(s) %s", i, device)
        run_workers(procs, devices, threads)
        # A worker that died mid-trial leaves a RUNNING trial: reap it and finish the budget here.
        worker_loop(config, prepared, url, budget, workers, deadline, since)


def run_workers(procs: Sequence[mp.process.BaseProcess], devices: Sequence[str | None],
                threads: int | None) -> list[str]:
    """Start the spawned workers (``start_workers``) and wait for them all; on Ctrl-C or SIGTERM stop them
    (``stop_workers``) and raise. Returns the names of the workers that ended with an error."""
    start_workers(procs, devices, threads)
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:  # stop the workers and wait for their cleanup
        stop_workers(procs)
        raise
    return [p.name for p in procs if p.exitcode != 0]


def stop_workers(procs: Sequence[mp.process.BaseProcess], grace: float = WORKER_STOP_GRACE_SECONDS) -> None:
    """SIGTERM every live worker, give them ``grace`` seconds to close their trial, then kill what is left."""
    terminate_then_kill(procs, grace, log)


def summarise(config: StudyConfig, storage_url: str, since: int = 0) -> RunSummary:
    """Trial counts and the best trials (or the Pareto front) of a study."""
    study = optuna.load_study(study_name=config.study.name, storage=open_storage(storage_url))
    counts = count_trials(study)
    skipped = count_repeats(study)
    best = []
    if counts[TrialState.COMPLETE]:
        for t in study.best_trials if config.multi_objective else [study.best_trial]:
            best.append({"number": t.number, "values": t.values, "params": trial_choices(t)})
    return RunSummary(
        stopped=failure_stop(study, config.budget.max_failed, since) or repeats_stop(study),
        study_name=config.study.name,
        storage_url=storage_url,
        complete=counts[TrialState.COMPLETE],
        pruned=counts[TrialState.PRUNED],
        failed=counts[TrialState.FAIL] - skipped,
        skipped=skipped,
        running=counts[TrialState.RUNNING],
        waiting=counts[TrialState.WAITING],
        best=best,
    )
