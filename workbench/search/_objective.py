"""One trial: choose, train with pruning and tracking, evaluate, measure cost, return the objectives."""

from __future__ import annotations

import dataclasses
import logging
import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from workbench.search._config import COST_METRICS, StudyConfig
from workbench.search._devices import VISIBLE
from workbench.search._heartbeat import FAIL_REASON_KEY, RETRY_OF_KEY, queue_retry
from workbench.search._prepare import PreparedStudy
from workbench.search._sampling import DUPLICATE_OF_KEY, duplicate_of
from workbench.search._space import (
    CUTS_KEY,
    channels_key,
    stage_levels,
    suggest,
    trial_choices,
    trial_train_config,
)
from workbench.search._storage import sqlite_creation_lock
from workbench.training import (
    RankFailedError,
    RankTask,
    TrainConfig,
    Trainer,
    TrainingCallback,
    TrainResult,
    latest_checkpoint,
    launch_ranks,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    """What running one trial returned: its Optuna state and, when complete, one value per objective.

    The tag an MLflow run carries for how its trial ended is ``workbench.tracking.TrialOutcome``.
    """

    state: TrialState
    values: tuple[float, ...] = ()
    duplicate_of: int | None = None


def headline(summary: Mapping[str, float], metric: str) -> float:
    """The value of ``metric`` in an evaluation summary; ``rank1`` falls back to ``rank1_mean``."""
    for key in (metric, f"{metric}_mean"):
        if key in summary:
            return float(summary[key])
    raise KeyError(f"objective metric {metric!r} is not in the evaluation summary (keys: {sorted(summary)})")


class PruningCallback(TrainingCallback):
    """Report the objective at every evaluation and stop the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial = trial
        self.metric = metric

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        self.trial.report(headline(metrics, self.metric), step)
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
        self.frames = config.data.eval_frames
        self.amp = amp  # evaluations run in the precision the trial trains in
        self.last: Any = None

    def __call__(self, model: Any, step: int) -> Mapping[str, float]:
        from workbench.evaluation import evaluate_model

        result, _ = evaluate_model(model, self.source, self.protocol, partition=self.partition,
                                   batch_size=self.batch_size, frames=self.frames, progress=False, amp=self.amp)
        self.last = result
        return result.summary()


def tracker_for(config: StudyConfig) -> Any:
    """The study's MLflow tracker (parent run found again or created).

    Several workers may open a fresh SQLite store at the same moment; MLflow's table creation is not
    safe under that race, so on SQLite the first opening is serialised with a file lock.
    """
    from workbench.tracking import StudyTracker, resolve_tracking_uri

    uri = resolve_tracking_uri(config.tracking.uri or None, project_dir=config.project_dir)
    if not uri.startswith("sqlite:///"):
        return StudyTracker(uri, config.experiment_name, config.study.name)
    with sqlite_creation_lock(uri[len("sqlite:///"):]):
        return StudyTracker(uri, config.experiment_name, config.study.name)


class _StartStep(TrainingCallback):
    """Record where training started, so a retried trial shows it resumed from a checkpoint."""

    def __init__(self, trial: optuna.Trial) -> None:
        self.trial = trial

    def on_train_start(self, info: Any) -> None:
        self.trial.set_user_attr("start_step", int(info.start_step))


def mark_lost_trials(config: StudyConfig, numbers: tuple[int, ...]) -> None:
    """Close the MLflow runs of trials whose worker died (they were left RUNNING) as failed."""
    from workbench.tracking import TAG_TRIAL, TrialRun

    if not numbers:
        return
    tracker = tracker_for(config)
    for run in tracker.trial_runs():
        number = int(run.data.tags.get(TAG_TRIAL, -1))
        if number in numbers and run.info.status == "RUNNING":
            TrialRun(tracker.client, run.info.run_id, number, tracker.experiment_id).finish(
                "failed", error="worker lost (killed or stopped heartbeating); the trial was queued again")


def run_trial(config: StudyConfig, prepared: PreparedStudy, study: optuna.Study, trial: optuna.Trial) -> TrialResult:
    """Train and evaluate one trial; every way it can end is recorded in Optuna and MLflow."""
    from workbench.tracking import TAG_STEP, VALIDATION_METRIC_PREFIX, hierarchy_params, log_hierarchy

    candidates = prepared.candidate_map()
    choice = suggest(trial, config.space, prepared.candidates, config.model_channels())
    seeds = replicate_seeds(config)
    trial.set_user_attr("seeds", seeds)
    earlier = duplicate_of(study, trial, seeds)
    if earlier is not None:  # nothing is trained or logged for a proposal that repeats a trial
        trial.set_user_attr(DUPLICATE_OF_KEY, earlier)
        return TrialResult(TrialState.FAIL, duplicate_of=earlier)
    log.info("trial %d started: %s", trial.number, trial_choices(trial))
    output_dir = Path(trial.user_attrs.get("output_dir") or
                      config.project_dir / "trials" / config.study.name / f"trial-{trial.number:04d}")
    trial.set_user_attr("output_dir", str(output_dir))
    trial.set_user_attr("tree_source", candidates[choice.tree].source)
    train_config = trial_train_config(config, choice, candidates, output_dir, str(prepared.data_path),
                                      str(prepared.split_path))
    retry_of = trial.user_attrs.get(RETRY_OF_KEY)
    tracker = tracker_for(config)
    tags = {"workbench.output_dir": str(output_dir)}
    if os.environ.get(VISIBLE):
        tags["workbench.cuda_visible_devices"] = os.environ[VISIBLE]  # the worker's GPU(s) on this machine
    if train_config.nproc_per_node > 1:
        tags["workbench.ranks"] = str(train_config.nproc_per_node)
    run = tracker.start_trial(trial.number, tags=tags, retry_of=int(retry_of) if retry_of is not None else None)
    candidate = candidates[choice.tree]
    levels = stage_levels(train_config)
    trial.set_user_attr(CUTS_KEY, levels)
    trial.set_user_attr("mlflow_run_id", run.run_id)
    # The choices go in first so that a pruned or failed trial still shows its tree and cuts.
    choice_params = {**hierarchy_params(candidate.tree, [], levels), "channels": channels_key(choice.channels),
                     "lr": choice.lr, "frames": choice.frames, "fta": choice.fta, "tree": choice.tree,
                     "model": train_config.model.name, "seeds": seeds}
    try:
        run.log_params(choice_params)
        # The tree and its drawing go first too, so that a tree tried only by pruned trials still
        # reaches MLflow.
        for path in _tree_files(candidate, choice, levels, output_dir):
            run.log_artifact(path, "hierarchy")
        # Cost first, from the model as built, so that pruned and failed trials show it too.
        spec, cost = _model_cost(config, prepared, train_config)
        splits = list(spec.split_lists().values()) if spec is not None else []
        run.log_metrics(cost)
        trial.set_user_attr("cost", cost)
        for key in ("gflops", "params"):
            if key in cost:
                trial.set_user_attr(key, cost[key])
        trial.set_user_attr("splits", splits)
        replicates = train_replicates(config, prepared, trial, run, train_config, output_dir)
        last = replicates[-1]
        params = {**choice_params, **hierarchy_params(candidate.tree, splits, levels)}
        view_tables = [p for p in last.files if p.suffix in (".csv", ".png", ".json")]
        log_hierarchy(run, params, config_file=last.folder / "config.toml", view_tables=view_tables,
                      checkpoint=last.checkpoint if config.tracking.log_checkpoint else None)
        scores = replicate_scores(replicates, config.objectives[0].metric)
        metrics = {**scores, **cost}
        # At the last step, where these figures come from: at step 0 they would start every learning curve
        # in MLflow (and `study curve`) with the final value.
        run.log_metrics({**{f"{VALIDATION_METRIC_PREFIX}{k}": v for k, v in scores.items()}, **cost,
                         "train_seconds": sum(r.seconds for r in replicates)}, step=config.budget.iterations)
        values = tuple(_objective_value(o.metric, metrics) for o in config.objectives)
        for obj, value in zip(config.objectives, values, strict=True):
            trial.set_user_attr(obj.metric, value)
        run.set_tags({TAG_STEP: config.budget.iterations})
        run.finish("complete")
        return TrialResult(TrialState.COMPLETE, values)
    except optuna.TrialPruned as exc:
        steps = study._storage.get_trial(trial._trial_id).intermediate_values
        if steps:
            run.set_tags({TAG_STEP: max(steps)})  # its figures are from this step, not the last
        run.finish("pruned", error=str(exc))
        return TrialResult(TrialState.PRUNED)
    except KeyboardInterrupt:
        run.finish("failed", error="interrupted")
        raise
    except RankFailedError as exc:
        if not exc.lost or RETRY_OF_KEY in trial.user_attrs:
            return _failed(trial, run, exc)
        # A rank killed from outside (the out-of-memory killer, a user) is a lost worker's trial: it is
        # retried once, from its checkpoint, and not held against the study.
        log.warning("trial %d: %s; queued again to resume from its last checkpoint", trial.number, exc)
        study._storage.set_trial_system_attr(trial._trial_id, FAIL_REASON_KEY, str(exc))
        queue_retry(study, trial)
        run.finish("failed", error=f"{exc}; the trial was queued again")
        return TrialResult(TrialState.FAIL)
    except Exception as exc:
        return _failed(trial, run, exc)


def _failed(trial: optuna.Trial, run: Any, exc: Exception) -> TrialResult:
    """Record a trial that raised: its error in Optuna (counted by ``budget.max_failed``) and MLflow."""
    log.error("trial %d failed: %s", trial.number, exc)
    trial.set_user_attr("error", f"{type(exc).__name__}: {exc}"[:2000])
    run.finish("failed", error="".join(traceback.format_exception_only(exc)).strip())
    return TrialResult(TrialState.FAIL)


def _objective_value(metric: str, metrics: Mapping[str, float]) -> float:
    return headline(metrics, metric)


def _model_cost(config: StudyConfig, prepared: PreparedStudy, train_config: TrainConfig) -> tuple[Any, dict[str, float]]:
    """The trial model's spec (``None`` for a model without one) and its cost, before any training.

    The model is built for as many classes as the split has training subjects, as the trainer builds it.
    """
    import torch

    from workbench.data import read_partition

    classes = len(read_partition(prepared.split_path).train)
    with torch.device("meta"):
        spec = getattr(train_config.model.build(classes), "spec", None)
    model = spec if spec is not None else train_config.model.build(classes)
    return spec, _cost(model, config, train_config)


def _cost(model_or_spec: Any, config: StudyConfig, train_config: TrainConfig) -> dict[str, float]:
    """Cost figures of a trial's model: timed (if asked) on the device and in the precision it trained in."""
    from workbench.cost import estimate_cost

    measures = ["params", "flops"]
    if config.tracking.measure_latency or any(o.metric == "latency_ms" for o in config.objectives):
        measures.append("latency")
    if any(o.metric == "peak_memory_mb" for o in config.objectives):
        measures.append("memory")
    report = estimate_cost(model_or_spec, frames=config.train.data.frames, measure=measures, repeats=3,
                           device=train_config.device, amp=train_config.amp)
    out: dict[str, float] = {}
    if report.params is not None:
        out["params"] = float(report.params)
        out["params_m"] = report.params / 1e6
    for key in ("gflops", "latency_ms", "peak_memory_mb"):
        value = getattr(report, key)
        if value is not None:
            out[key] = float(value)
    return out


def _tree_files(candidate: Any, choice: Any, levels: list[int], output_dir: Path) -> list[Path]:
    """The trial's tree as JSON and its dendrogram at the trial's cuts (PNG and SVG), in ``output_dir``."""
    from workbench.hierarchy import plot_dendrogram

    output_dir.mkdir(parents=True, exist_ok=True)
    tree_file = output_dir / f"{candidate.name}.json"
    if not tree_file.exists():
        candidate.tree.save(tree_file)
    png = output_dir / f"{candidate.name}-dendrogram.png"
    if not png.exists():  # one drawing writes the PNG and an SVG beside it
        plot_dendrogram(candidate.tree, png, cuts=[k for k in choice.cuts if k > 1],
                        title=f"{candidate.name}: regions per stage {levels}")
    return [tree_file, *(p for p in (png, png.with_suffix(".svg")) if p.exists())]


@dataclass
class Replicate:
    """One training seed of a trial: its folder, final validation result and model."""

    seed: int
    folder: Path
    result: Any
    model: Any
    checkpoint: Path | None
    seconds: float
    files: list[Path]


def replicate_seeds(config: StudyConfig) -> list[int]:
    """The training seeds every trial uses: ``train.seed``, ``train.seed + 1``, ... (``budget.seeds`` of them).

    Every configuration trains on the same list, so configurations are compared seed by seed.
    """
    return [config.train.seed + i for i in range(config.budget.seeds)]


def replicate_folder(output_dir: Path, seed: int, n_seeds: int) -> Path:
    """Where one seed of a trial trains: the trial's folder itself with one seed, ``seed-<s>/`` with several."""
    return output_dir if n_seeds == 1 else output_dir / f"seed-{seed}"


def train_replicates(config: StudyConfig, prepared: PreparedStudy, trial: optuna.Trial | None, run: Any,
                     train_config: TrainConfig, output_dir: Path, *, seeds: list[int] | None = None,
                     folders: Callable[[int], Path] | None = None) -> list[Replicate]:
    """Train the trial's configuration once per seed; a seed already evaluated is read back, not retrained.

    Only the first seed reports to the pruner (a pruned configuration stops there); every seed's
    validation figures go to MLflow under ``val/seed<s>/`` when there are several. A seed whose
    training was cut short resumes from its latest checkpoint. ``seeds`` and ``folders`` (seed ->
    folder) train other seeds elsewhere, e.g. the fresh seeds that confirm a winner; without a
    ``trial`` nothing reports to Optuna, without a ``run`` nothing to MLflow.
    """
    from workbench.evaluation import load_result
    from workbench.tracking import VALIDATION_METRIC_PREFIX, MLflowTrainingCallback
    from workbench.training import load_for_inference

    seeds = seeds or replicate_seeds(config)
    out: list[Replicate] = []
    for index, seed in enumerate(seeds):
        folder = folders(seed) if folders is not None else replicate_folder(output_dir, seed, len(seeds))
        saved = folder / "evaluation"
        checkpoint = latest_checkpoint(folder)
        own_folder = len(seeds) > 1 or folders is not None
        if own_folder and (saved / "subject_scores.npz").is_file() and checkpoint is not None:
            model, _ = load_for_inference(checkpoint, "cpu")
            out.append(Replicate(seed, folder, load_result(saved), model, checkpoint, 0.0, []))
            continue
        cfg = dataclasses.replace(train_config, seed=seed, output_dir=str(folder))
        prefix = VALIDATION_METRIC_PREFIX if len(seeds) == 1 else f"{VALIDATION_METRIC_PREFIX}seed{seed}/"
        callbacks: list[TrainingCallback] = []
        if run is not None:
            callbacks.append(MLflowTrainingCallback(run, eval_prefix=prefix))
        if trial is not None:
            callbacks.append(_StartStep(trial))
            if index == 0 and not config.multi_objective and config.objectives[0].metric not in COST_METRICS:
                callbacks.append(PruningCallback(trial, config.objectives[0].metric))
        if cfg.nproc_per_node > 1:
            # Rank 0 evaluates and saves; this process runs the callbacks (Optuna, MLflow) for it.
            launched = launch_ranks(cfg, cfg.nproc_per_node, task=_TrialRanks(config, prepared, saved),
                                    callbacks=callbacks, resume=checkpoint is not None)
            done = launched.result
            out.append(Replicate(seed, folder, load_result(saved), None, done.checkpoint, done.seconds,
                                 launched.finished))
            continue
        evaluator = _Evaluator(config, prepared, cfg.amp)
        trainer = Trainer(cfg, evaluator=evaluator, callbacks=callbacks, progress=False)
        trained = trainer.fit(resume=checkpoint is not None)
        out.append(Replicate(seed, folder, *_final_evaluation(evaluator, trainer.model, trained, saved)))
    return out


def _final_evaluation(evaluator: _Evaluator, model: Any, trained: TrainResult,
                      saved: Path) -> tuple[Any, Any, Path | None, float, list[Path]]:
    """The trained model's last validation result, saved to ``saved``: (result, model, checkpoint, seconds, files)."""
    if evaluator.last is None:  # stopped after its last checkpoint, before the final evaluation
        evaluator(model, trained.step)
    files = evaluator.last.save(saved)
    return evaluator.last, model, trained.checkpoint, trained.seconds, files


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
