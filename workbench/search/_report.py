"""Study reports: best trials or the Pareto front, parameter importances, winning cuts, figures."""

from __future__ import annotations

import dataclasses
import json
import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench.search._heartbeat import count_trials
from workbench.search._sampling import count_repeats
from workbench.search._space import trial_choices, trial_cuts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyReport:
    """What ``workbench study report`` prints and writes."""

    study_name: str
    directions: list[str]
    metrics: list[str]
    counts: dict[str, int]
    best: list[dict[str, Any]]
    importances: dict[str, float]
    figures: list[Path] = field(default_factory=list)
    trees: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        """A readable summary."""
        lines = [f"study {self.study_name}: " + ", ".join(f"{v} {k}" for k, v in self.counts.items() if v)]
        title = "Pareto front" if len(self.directions) > 1 else "best trial"
        goal = ", ".join(f"{m} ({d[:3]})" for m, d in zip(self.metrics, self.directions, strict=True))
        lines.append(f"{title} ({goal}):")
        for row in self.best:
            values = ", ".join(f"{m}={v:.4g}" for m, v in zip(self.metrics, row["values"], strict=True))
            lines.append(f"  trial {row['number']}: {values}")
            lines.append(f"    tree {row['params'].get('tree')} cuts {row['cuts']} splits (rows at each stage's height) {row['splits']}")
            other = {k: v for k, v in row["params"].items() if k != "tree" and not k.startswith("cut_")}
            lines.append(f"    {other}")
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.importances:
            lines.append("parameter importances (first objective):")
            for name, value in self.importances.items():
                lines.append(f"  {name:<14} {value:.3f}")
        for comparison in self.trees:
            lines.append("")
            lines.append(comparison.text())
        if self.best and self.trees:
            lines.append("")
            lines.append("the best trial is the best of many noisy figures on validation: confirm it with "
                         "`workbench study test` (test subjects) before reporting it")
        for path in self.figures:
            lines.append(f"figure: {path}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "study": self.study_name, "directions": self.directions, "metrics": self.metrics,
            "counts": self.counts, "best": self.best, "importances": self.importances,
            "figures": [str(p) for p in self.figures], "notes": self.notes,
            **{("trees" if c.split == "validation" else f"trees_{c.split}"): c.to_json() for c in self.trees},
            **{("verdict" if c.split == "validation" else f"verdict_{c.split}"): c.verdict for c in self.trees},
            **{("sizing" if c.split == "validation" else f"sizing_{c.split}"): dataclasses.asdict(c.sizing)
               for c in self.trees if c.sizing is not None},
            **{("margin" if c.split == "validation" else f"margin_{c.split}"): c.margin_lines()
               for c in self.trees if c.margin is not None},
        }


def trial_label(trial: FrozenTrial) -> str:
    """Short label of a trial's hierarchy, cuts as regions per stage: ``casia-b-paper [1, 2, 4]``."""
    return f"{trial_choices(trial).get('tree', '?')} {trial_cuts(trial)}"


def _splits(trial: FrozenTrial) -> list[list[int]]:
    """The trial's region heights per stage: as it recorded them (which outlive a moved or exported
    project), else cut again from its tree file."""
    from workbench.hierarchy import load_tree

    recorded = trial.user_attrs.get("splits")
    if recorded:
        return [[int(h) for h in split] for split in recorded]
    source = trial.user_attrs.get("tree_source", trial_choices(trial).get("tree"))
    if source is None:
        return []
    try:
        tree = load_tree(str(source))
        return [tree.cut(k) for k in trial_cuts(trial)]
    except (ValueError, FileNotFoundError, KeyError):
        return []


def build_report(study: optuna.Study, metrics: list[str], out_dir: Path | None = None,
                 config: Any = None, reference: str | None = None, margin: float | None = None) -> StudyReport:
    """Summarise ``study``; with ``out_dir``, also draw the history and (multi-objective) Pareto figures.

    With the study's ``config`` the report adds the per-tree comparison (validation, and test once
    ``workbench study test --all`` has scored the trials) against ``reference`` (default: the uniform
    tree), with a forest plot per split; ``margin`` adds which trees match the reference within that many
    points (``margin_verdict``).
    """
    counts = {state.name.lower(): n for state, n in count_trials(study).items()}
    skipped = count_repeats(study)
    if skipped:  # repeated proposals trained nothing: they are not failures
        counts["fail"] -= skipped
        counts["skipped"] = skipped
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    multi = len(study.directions) > 1
    best_trials: list[FrozenTrial] = []
    if complete:
        best_trials = sorted(study.best_trials, key=lambda t: t.number) if multi else [study.best_trial]
    best = [{"number": t.number, "values": list(t.values), "params": trial_choices(t), "cuts": trial_cuts(t),
             "splits": _splits(t)} for t in best_trials]
    importances: dict[str, float] = {}
    if len(complete) >= 3:
        try:
            target = None
            if multi:
                # Optuna's default evaluator explains *low* target values; the first objective is
                # usually rank-1, which is maximised, so its sign is turned for it.
                sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
                target = lambda t: sign * t.values[0]  # noqa: E731
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*importances of params to achieve low")
                importances = dict(optuna.importance.get_param_importances(study, target=target))
        except (RuntimeError, ValueError) as exc:
            log.info("no parameter importances: %s", exc)
        if len(importances) == 1:  # one searched parameter explains everything by construction: say nothing
            importances = {}
    figures: list[Path] = []
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    if out_dir is not None and (complete or pruned):
        figures.append(_history_figure(study, complete, metrics, out_dir / "history.png", pruned=pruned))
        if multi and len(metrics) >= 2:
            figures.append(_pareto_figure(complete, best_trials, metrics, study.directions, out_dir / "pareto.png"))
    trees = []
    if config is not None and complete:
        from workbench.search._tree_report import compare_trees, forest_figure

        for split in ("validation", "test"):
            comparison = compare_trees(config, study, split, reference, margin)
            if comparison is not None:
                trees.append(comparison)
                if out_dir is not None:
                    figures.append(forest_figure(comparison, out_dir / f"trees-{split}.png"))
    directions = [d.name.lower() for d in study.directions]
    notes = [n for i, m in enumerate(metrics) if (n := tree_cost_note(complete, i, m))]
    report = StudyReport(study.study_name, directions, metrics, counts, best, importances, figures, trees, notes)
    if out_dir is not None:
        (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2, default=str))
    return report


#: Objectives that measure cost rather than accuracy (the tree barely moves them).
_COST_OBJECTIVES = ("gflops", "params_m", "latency_ms", "peak_memory_mb")


def tree_cost_note(trials: list[FrozenTrial], index: int, metric: str) -> str:
    """How much the tree alone moves a cost objective: trials that differ only in their tree are compared.

    Regions of one stage share their convolution work, so trees of equal cuts cost nearly the same;
    a front drawn across trees then ranks noise in the last digits. Empty when no such pair exists.
    """
    if metric not in _COST_OBJECTIVES:
        return ""
    groups: dict[str, list[float]] = {}
    for t in trials:
        rest = repr(sorted((k, repr(v)) for k, v in trial_choices(t).items() if k != "tree"))
        groups.setdefault(rest, []).append(float(t.values[index]))
    spreads = [(max(v) - min(v)) / (sum(v) / len(v)) for v in groups.values()
               if len(v) >= 2 and sum(v) > 0]
    if not spreads:
        return ""
    return (f"{metric}: trials that differ only in their tree differ by at most {100 * max(spreads):.2g} % "
            f"({len(spreads)} such group(s)); cost is set by the cuts, channels and frames, so along the front the "
            "trees trade accuracy only")


def _history_figure(study: optuna.Study, trials: list[FrozenTrial], metrics: list[str], path: Path,
                    pruned: Sequence[FrozenTrial] = ()) -> Path:
    """Each complete trial's value and the best so far; a pruned trial at the figure of the step it
    was pruned at, hollow, never counted as the best (it is not a final figure)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    numbers = [t.number for t in trials]
    values = [t.values[0] for t in trials]
    ax.scatter(numbers, values, s=18, label="complete")
    early = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in pruned if t.intermediate_values]
    if early:
        ax.scatter([n for n, _ in early], [v for _, v in early], s=18, facecolors="none", edgecolors="0.45",
                   label="pruned (figure at its last step)")
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    running: list[float] = []
    for v in values:
        running.append(v if not running else (max if maximize else min)(running[-1], v))
    if numbers:
        ax.step(numbers, running, where="post", color="tab:red", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # trial numbers, not 0.5 steps
    ax.set_xlabel("trial")
    ax.set_ylabel(metrics[0])
    ax.set_title(f"{study.study_name}: optimisation history")
    ax.legend(loc="best")
    fig.savefig(path, dpi=120)
    return path


def _pareto_figure(trials: list[FrozenTrial], front: list[FrozenTrial], metrics: list[str],
                   directions: list[optuna.study.StudyDirection], path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    front_ids = {t.number for t in front}
    rest = [t for t in trials if t.number not in front_ids]
    ax.scatter([t.values[1] for t in rest], [t.values[0] for t in rest], s=18, c="0.6", label="dominated")
    ordered = sorted(front, key=lambda t: t.values[1])
    ax.plot([t.values[1] for t in ordered], [t.values[0] for t in ordered], "o-", c="tab:red", label="Pareto front")
    for t in trials:
        ax.annotate(trial_label(t), (t.values[1], t.values[0]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xlabel(f"{metrics[1]} ({directions[1].name.lower()})")
    ax.set_ylabel(f"{metrics[0]} ({directions[0].name.lower()})")
    ax.set_title("trees and cuts: accuracy against cost")
    ax.legend(loc="best")
    fig.savefig(path, dpi=120)
    return path
