"""One trial: choose, train with pruning and tracking, evaluate, measure cost, return the objectives."""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from workbench.search._config import StudyConfig
from workbench.search._devices import VISIBLE
from workbench.search._heartbeat import FAIL_REASON_KEY, RETRY_OF_KEY, queue_retry
from workbench.search._prepare import PreparedStudy
from workbench.search._replicates import headline, replicate_scores, replicate_seeds, train_replicates
from workbench.search._sampling import DUPLICATE_OF_KEY, duplicate_of
from workbench.search._space import (
    CUTS_KEY,
    channels_key,
    stage_levels,
    suggest,
    trial_choices,
    trial_train_config,
)
from workbench.training import RankFailedError, TrainConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialResult:
    """What running one trial returned: its Optuna state and, when complete, one value per objective.

    The tag an MLflow run carries for how its trial ended is ``workbench.tracking.TrialOutcome``.
    """

    state: TrialState
    values: tuple[float, ...] = ()
    duplicate_of: int | None = None


def tracker_for(config: StudyConfig) -> Any:
    """The study's MLflow tracker (parent run found again or created; ``StudyTracker`` makes that safe for
    workers opening it at the same moment)."""
    from workbench.tracking import StudyTracker, resolve_tracking_uri

    uri = resolve_tracking_uri(config.tracking.uri or None, project_dir=config.project_dir)
    return StudyTracker(uri, config.experiment_name, config.study.name)


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
