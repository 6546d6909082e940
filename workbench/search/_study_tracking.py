"""What a study shows in MLflow on its parent run: its definition when it starts, its report and state when it ends."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from workbench.search._config import StudyConfig
from workbench.search._prepare import PreparedStudy

if TYPE_CHECKING:
    from workbench.search._runner import RunSummary

log = logging.getLogger(__name__)


def study_definition(config: StudyConfig, study_file: Path) -> dict[str, Any]:
    """The study as params: its file's name, data and protocol, candidate trees, search space, objectives,
    budget, sampler and pruner (nested; the tracker flattens them with dots)."""
    sections = ("data", "hierarchies", "space", "budget", "sampler", "pruner")
    definition: dict[str, Any] = {name: dataclasses.asdict(getattr(config, name)) for name in sections}
    if config.data.is_synthetic:
        definition["data"].pop("source", None)
    else:
        definition["data"].pop("synthetic", None)
    definition["study_file"] = study_file.name
    definition["objectives"] = [f"{o.direction} {o.metric}" for o in config.objectives]
    definition["model"] = config.train.model.name
    return definition


def describe_study(tracker: Any, config: StudyConfig, study_file: Path, prepared: PreparedStudy | None = None) -> None:
    """Before the first trial: the description on the experiment and the parent run, the definition as
    params (a resumed study whose file changed records the changes as tags), the study file, and each
    candidate tree (JSON, and its dendrogram with per-node support where discovery measured it) as artifacts."""
    tracker.describe(config.study.description)
    changed = tracker.log_study_params(study_definition(config, study_file))
    if changed:
        log.warning("study %s: its definition changed since it was first run (%s); MLflow keeps the first "
                    "values as params and the new ones as workbench.changed.* tags", config.study.name,
                    ", ".join(changed))
    if study_file.is_file():
        tracker.log_study_artifact(study_file, "study")
    if prepared is not None:
        _log_candidates(tracker, config, prepared)


def _log_candidates(tracker: Any, config: StudyConfig, prepared: PreparedStudy) -> None:
    from workbench.hierarchy import plot_dendrogram

    out = config.project_dir / "reports" / config.study.name / "trees"
    out.mkdir(parents=True, exist_ok=True)
    cuts = sorted({k for ks in config.space.stage_cuts for k in ks if k > 1})
    for candidate in prepared.candidates:
        tree_file = out / f"{candidate.name}.json"
        candidate.tree.save(tree_file)
        png = out / f"{candidate.name}-dendrogram.png"
        try:
            plot_dendrogram(candidate.tree, png, cuts=[k for k in cuts if k in candidate.tree.reachable_ks()],
                            title=f"{candidate.name} ({candidate.tree.tree_id})")
        except ValueError as exc:  # a drawing must not stop a study
            log.warning("dendrogram of %s not drawn: %s", candidate.name, exc)
    tracker.log_study_artifact(out, "trees")


def log_study_to_tracking(config: StudyConfig, study: optuna.Study, summary: RunSummary) -> Path:
    """Write the report (figures, JSON) and log it with the best values and counts on the study's parent run.

    The parent run ends FINISHED (or FAILED when the study stopped for failures or repeats) once no
    trial is running; while another process still trains one, it stays open for that process to end.
    """
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
    if summary.running == 0:
        tracker.finish("FAILED" if summary.stopped else "FINISHED")
    return out
