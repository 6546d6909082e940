"""A configuration's training seeds: where each trains, training them, reading them back, their aggregate.

A trial trains its configuration once per seed of ``[budget] seeds`` (``seed-<s>/`` under the trial's
folder when there are several); ``workbench study replicate`` adds fresh seeds beside them
(``confirm/seed-<s>/``). Every seed a configuration was trained on counts wherever its figures are
compared: the per-tree tables, the test step, ``study compare``. Folders are found relative to the
study's project directory when it has moved since the trial ran.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from workbench.search._config import COST_METRICS, StudyConfig
from workbench.search._prepare import PreparedStudy
from workbench.tracking import replicate_folder
from workbench.training import (
    TRAINING_LOG,
    RankTask,
    TrainConfig,
    Trainer,
    TrainingCallback,
    TrainResult,
    latest_checkpoint,
    launch_ranks,
    release_memory,
    training_seconds,
)

log = logging.getLogger(__name__)

#: The lock file a process holds in a seed's folder while it trains that seed (released when it dies).
SEED_CLAIM = ".training.lock"


def headline(summary: Mapping[str, float], metric: str) -> float:
    """The value of ``metric`` in an evaluation summary; ``rank1`` falls back to ``rank1_mean``."""
    for key in (metric, f"{metric}_mean"):
        if key in summary:
            return float(summary[key])
    raise KeyError(f"objective metric {metric!r} is not in the evaluation summary (keys: {sorted(summary)})")


class PruningCallback(TrainingCallback):
    """Report the objective at every evaluation and stop the trial when the pruner says so.

    The evaluation at ``last_step`` (the end of training) is reported but never pruned: the training
    it would save is already spent, and the trial's finished result counts towards the study.
    """

    def __init__(self, trial: optuna.Trial, metric: str, last_step: int | None = None) -> None:
        self.trial = trial
        self.metric = metric
        self.last_step = last_step

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        self.trial.report(headline(metrics, self.metric), step)
        if self.last_step is not None and step >= self.last_step:
            return
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} ({self.metric}={headline(metrics, self.metric):.4f})")


class _Evaluator:
    """The trainer's evaluator on the validation subjects; keeps the last full result (for the view table).

    It opens the study's split, whose ``TEST_SET`` holds the validation subjects: the test subjects
    are never read while trials are chosen.
    """

    def __init__(self, config: StudyConfig, prepared: PreparedStudy, amp: str) -> None:
        from workbench.evaluation import open_for_protocol

        self.protocol = prepared.validation_protocol
        self.partition = str(prepared.split_path)
        self.source = open_for_protocol(prepared.data_path, self.protocol, self.partition)
        self.batch_size = config.data.eval_batch_size
        self.frames = config.data.frames_for_validation
        self.amp = amp  # evaluations run in the precision the trial trains in
        self.last: Any = None

    def __call__(self, model: Any, step: int) -> Mapping[str, float]:
        from workbench.evaluation import evaluate_model

        result, _ = evaluate_model(model, self.source, self.protocol, partition=self.partition,
                                   batch_size=self.batch_size, frames=self.frames, progress=False, amp=self.amp)
        self.last = result
        return result.summary()


class _StartStep(TrainingCallback):
    """Record where training started, so a retried trial shows it resumed from a checkpoint."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_train_start(self, info: Any) -> None:
        self.trial.set_user_attr("start_step", int(info.start_step))


@dataclass
class Replicate:
    """One training seed of a trial: its folder, final validation result and last checkpoint."""

    seed: int
    folder: Path
    result: Any
    checkpoint: Path | None
    seconds: float
    files: list[Path]


def replicate_seeds(config: StudyConfig) -> list[int]:
    """The training seeds every trial uses: ``train.seed``, ``train.seed + 1``, ... (``budget.seeds`` of them).

    Every configuration trains on the same list, so configurations are compared seed by seed.
    """
    return [config.train.seed + i for i in range(config.budget.seeds)]


def trial_folder(trial: FrozenTrial, config: StudyConfig) -> Path:
    """The trial's folder under the study's project directory, where the trial ran or where its record was
    moved or exported to (``--project-dir``); the folder it trained in when the project has no such folder."""
    from workbench.tracking import trial_run_folder

    stored = trial.user_attrs.get("output_dir")
    if not stored:
        return config.project_dir / "trials" / config.study.name / f"trial-{trial.number:04d}"
    return trial_run_folder(Path(stored), config.project_dir)


def trial_seeds(trial: FrozenTrial, config: StudyConfig) -> list[int]:
    """The seeds the trial itself trained on (``study replicate`` adds fresh ones beside them)."""
    return [int(s) for s in trial.user_attrs.get("seeds") or [config.train.seed]]


def trial_seed_folders(trial: FrozenTrial, config: StudyConfig) -> dict[int, Path]:
    """Seed -> folder for every seed the trial's configuration was trained on: its own, then fresh ones."""
    from workbench.tracking import seed_folders

    return seed_folders(trial_folder(trial, config), trial_seeds(trial, config))


@contextmanager
def seed_claim(folder: Path, wait: bool = True) -> Iterator[bool]:
    """Hold the seed in ``folder`` for this process: yields ``True`` once held, ``False`` at once when
    another process holds it and ``wait`` is false. The lock dies with its process, so a killed
    worker's seed is free again and resumes from its checkpoint."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / SEED_CLAIM).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def train_replicates(config: StudyConfig, prepared: PreparedStudy, trial: optuna.Trial | None, run: Any,
                     train_config: TrainConfig, output_dir: Path, *, seeds: list[int] | None = None,
                     folders: Callable[[int], Path] | None = None, wait: bool = True) -> list[Replicate]:
    """Train the trial's configuration once per seed; a seed already evaluated is read back, not retrained.

    Only the first seed reports to the pruner (a pruned configuration stops there); every seed's
    validation figures go to MLflow under ``val/seed<s>/`` when there are several. A seed whose
    training was cut short resumes from its latest checkpoint. ``seeds`` and ``folders`` (seed ->
    folder) train other seeds elsewhere, e.g. the fresh seeds that confirm a winner; without a
    ``trial`` nothing reports to Optuna, without a ``run`` nothing to MLflow. A seed another process
    is training is waited for, then read back; with ``wait`` false it is left out of the list instead
    (processes sharing the seeds of several configurations each take the free ones first).
    """
    seeds = seeds or replicate_seeds(config)
    out: list[Replicate] = []
    for index, seed in enumerate(seeds):
        folder = folders(seed) if folders is not None else replicate_folder(output_dir, seed, len(seeds))
        own_folder = len(seeds) > 1 or folders is not None
        args = (config, prepared, trial, run, train_config, folder, seed, index, len(seeds), own_folder)
        if not own_folder:  # one seed trains in the trial's folder, which only this trial's process uses
            out.append(_train_seed(*args))
            continue
        with seed_claim(folder, wait) as held:
            if held:
                out.append(_train_seed(*args))
    return out


def reports_to_pruner(config: StudyConfig) -> bool:
    """Whether a trial's first seed reports its objective to the pruner (single objective, not a cost)."""
    return not config.multi_objective and config.objectives[0].metric not in COST_METRICS


def recorded_train_config(config: StudyConfig, prepared: PreparedStudy, trial: FrozenTrial, folder: Path) -> TrainConfig:
    """The training config a recorded (running or finished) trial's choices give, with ``folder`` as its output."""
    from workbench.search._space import suggest, trial_choices, trial_train_config

    choice = suggest(optuna.trial.FixedTrial(trial_choices(trial)), config.space, prepared.candidates,
                     config.model_channels())
    return trial_train_config(config, choice, prepared.candidate_map(), folder, str(prepared.data_path),
                              str(prepared.split_path))


def help_running_trial(config: StudyConfig, prepared: PreparedStudy, study: optuna.Study) -> str:
    """Train one seed of a trial another worker is running, one its own worker has not reached.

    For a worker with no trial left to start: the trial's owner trains its seeds in order and this one
    takes the last free seed (the seed claim keeps two processes off one seed), so the two meet in the
    middle; the owner reads that seed back when it gets there. Where a pruner can stop a trial at its
    first seed, a trial is helped only once its first seed is evaluated (a pruned trial needs no more).
    Nothing goes to Optuna or MLflow from here: the owner logs the seed as it reads it back.

    Returns ``"trained"``, ``"wait"`` (a running trial has not yet recorded its folder: look again
    shortly) or ``"none"`` (nothing to help with).
    """
    from optuna.trial import TrialState

    from workbench.tracking import seed_folders, split_evaluations

    if config.budget.seeds < 2:
        return "none"
    can_prune = reports_to_pruner(config) and config.pruner.name != "none"
    outcome = "none"
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "output_dir" not in trial.user_attrs:  # still being proposed, or a repeat about to be skipped
            outcome = "wait"
            continue
        seeds = trial_seeds(trial, config)
        folder = trial_folder(trial, config)
        evaluated = split_evaluations(folder, seeds, "validation")
        if can_prune and seeds[0] not in evaluated:
            continue
        pending = [seed for seed in seeds[1:] if seed not in evaluated]
        if not pending:
            continue
        train_config = recorded_train_config(config, prepared, trial, folder)
        folders = seed_folders(folder, seeds)
        for seed in reversed(pending):
            if train_replicates(config, prepared, None, None, train_config, folder, seeds=[seed],
                                folders=folders.__getitem__, wait=False):
                log.info("trial %d: seed %d trained here, beside the worker running the trial (it reads the seed "
                         "back)", trial.number, seed)
                return "trained"
    return outcome


def _train_seed(config: StudyConfig, prepared: PreparedStudy, trial: optuna.Trial | None, run: Any,
                train_config: TrainConfig, folder: Path, seed: int, index: int, n_seeds: int,
                own_folder: bool) -> Replicate:
    """One seed: read back when it was evaluated in a folder of its own, else trained (or resumed) and evaluated."""
    from workbench.evaluation import has_saved_result, load_result
    from workbench.tracking import SPLIT_FOLDERS, VALIDATION_METRIC_PREFIX, MLflowTrainingCallback

    saved = folder / SPLIT_FOLDERS["validation"]
    checkpoint = latest_checkpoint(folder)
    # A seed evaluated at the end of its training is read back, with or without its checkpoints (a study
    # kept as a record without model weights still reports, and a retry does not train it again).
    if own_folder and has_saved_result(saved):
        files = sorted(p for p in saved.iterdir() if p.is_file())  # its view tables, as when it was evaluated
        # Its training time is the configuration's cost wherever it was spent: from its own log.
        seconds = training_seconds(folder / TRAINING_LOG) or 0.0
        return Replicate(seed, folder, load_result(saved), checkpoint, seconds, files)
    cfg = dataclasses.replace(train_config, seed=seed, output_dir=str(folder))
    prefix = VALIDATION_METRIC_PREFIX if n_seeds == 1 else f"{VALIDATION_METRIC_PREFIX}seed{seed}/"
    callbacks: list[TrainingCallback] = []
    if run is not None:
        callbacks.append(MLflowTrainingCallback(run, eval_prefix=prefix))
    if trial is not None:
        callbacks.append(_StartStep(trial))
        if index == 0 and reports_to_pruner(config):
            callbacks.append(PruningCallback(trial, config.objectives[0].metric, last_step=cfg.iterations))
    if cfg.nproc_per_node > 1:
        # Rank 0 evaluates and saves; this process runs the callbacks (Optuna, MLflow) for it.
        launched = launch_ranks(cfg, cfg.nproc_per_node, task=_TrialRanks(config, prepared, saved),
                                callbacks=callbacks, resume=checkpoint is not None)
        done = launched.result
        return Replicate(seed, folder, load_result(saved), done.checkpoint, done.seconds, launched.finished)
    evaluator = _Evaluator(config, prepared, cfg.amp)
    trainer = Trainer(cfg, evaluator=evaluator, callbacks=callbacks, progress=False)
    trained = trainer.fit(resume=checkpoint is not None)
    replicate = Replicate(seed, folder, *_final_evaluation(evaluator, trainer.model, trained, saved))
    # The seed's model, optimizer state and cached GPU blocks go before the next seed or trial. A seed
    # that raised (a pruned one) stays held by its traceback until the exception is handled: the
    # study's worker loop releases memory after every trial for that.
    del trainer
    release_memory()
    return replicate


def _final_evaluation(evaluator: _Evaluator, model: Any, trained: TrainResult,
                      saved: Path) -> tuple[Any, Path | None, float, list[Path]]:
    """The trained model's last validation result, saved to ``saved``: (result, checkpoint, seconds, files)."""
    if evaluator.last is None:  # stopped after its last checkpoint, before the final evaluation
        evaluator(model, trained.step)
    files = evaluator.last.save(saved)
    return evaluator.last, trained.checkpoint, trained.seconds, files


class _TrialRanks(RankTask):
    """A trial's seed trained as DDP ranks: rank 0 evaluates on the validation subjects and saves the last result."""

    def __init__(self, config: StudyConfig, prepared: PreparedStudy, saved: Path) -> None:
        super().__init__()
        self.config, self.prepared, self.saved = config, prepared, saved
        self._validation: _Evaluator | None = None

    def evaluator(self, config: TrainConfig) -> _Evaluator:
        self._validation = _Evaluator(self.config, self.prepared, config.amp)
        return self._validation

    def finish(self, trainer: Trainer, result: TrainResult) -> list[Path]:
        assert self._validation is not None, "rank 0 built its evaluator before training"
        return _final_evaluation(self._validation, trainer.model, result, self.saved)[-1]


def replicate_scores(replicates: list[Replicate], metric: str) -> dict[str, float]:
    """The trial's validation figures: one seed's summary, or the mean over seeds with a seed-and-subject interval."""
    if len(replicates) == 1:
        return replicates[0].result.summary()
    from workbench.evaluation._replicates import compare_configurations

    summaries = [r.result.summary() for r in replicates]
    keys = [k for k in summaries[0] if not k.endswith(("_ci_low", "_ci_high"))]
    scores = {k: sum(s[k] for s in summaries) / len(summaries) for k in keys}
    key = metric if metric in scores else f"{metric}_mean"
    if key in scores:
        row = compare_configurations({"trial": {r.seed: [r.result] for r in replicates}}, "trial", key=key)[0]
        scores[f"{key}_ci_low"], scores[f"{key}_ci_high"] = row.estimate.low, row.estimate.high
    for r, s in zip(replicates, summaries, strict=True):
        scores.update({f"seed{r.seed}/{k}": v for k, v in s.items() if k in keys})
    return scores
