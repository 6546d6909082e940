"""The per-tree answer of a study: every tree and cut over the shared seeds, paired with a reference tree.

Figures come from the evaluation folders trials leave behind (``evaluation/`` on validation
subjects, ``test/`` once ``workbench study test --all`` has run), so the statistics need the saved
per-subject scores, never the Optuna values alone.
"""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench.evaluation._replicates import (
    ConfigurationRow,
    Sizing,
    compare_configurations,
    format_rows,
    margin_bounds,
    margin_verdict,
    sizing,
    verdict,
)
from workbench.search._config import StudyConfig
from workbench.search._report import trial_label
from workbench.search._space import trial_choices, trial_cuts

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class TreeComparison:
    """Per-tree rows on one split, the reference they are paired with, the verdict and caveats."""

    split: str
    key: str
    reference: str
    rows: list[ConfigurationRow]
    verdict: str
    notes: list[str] = field(default_factory=list)
    sizing: Sizing | None = None
    #: Points a configuration may trail the reference by and still match it (``margin_verdict``); ``None``:
    #: no such reading.
    margin: float | None = None

    def text(self) -> str:
        head = (f"per-tree comparison on {self.split} subjects ({self.key}; n = seeds; 95 % intervals over seeds "
                f"and a subject bootstrap; delta paired seed by seed against {self.reference}; p Holm-corrected):")
        if any("train_hours" in r.extra for r in self.rows):
            head += "\ntrain h: the hours its seeds spent training, summed (wall clock, on the machines that ran them)"
        sized = [] if self.sizing is None else [f"sizing: {self.sizing.text()}"]
        within = [f"margin {self.margin:g}: {line}" for line in self.margin_lines()]
        return "\n".join([head, format_rows(self.rows, self.key), *[f"note: {n}" for n in self.notes],
                          *sized, f"verdict: {self.verdict}", *within])

    def margin_lines(self) -> list[str]:
        """``margin_verdict``'s line per configuration; none without a margin."""
        return [] if self.margin is None else margin_verdict(self.rows, self.reference, self.margin)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.rows]


def replicate_results(trial: FrozenTrial, config: StudyConfig, split: str) -> dict[int, Any]:
    """Seed -> the saved ``split`` evaluation of every seed the trial's configuration was trained on."""
    from workbench.evaluation import load_result
    from workbench.search._replicates import trial_folder, trial_seeds
    from workbench.tracking import split_evaluations

    found = split_evaluations(trial_folder(trial, config), trial_seeds(trial, config), split)
    return {seed: load_result(path) for seed, path in found.items()}


def trial_costs(trial: FrozenTrial, config: StudyConfig, results: dict[int, Any]) -> dict[str, Any]:
    """Params and GFLOPs of the trial's model, and ``train_hours``: the wall-clock hours its seeds in
    ``results`` spent training (from each seed's ``metrics.jsonl``; left out when a seed has no log)."""
    from workbench.search._replicates import trial_seed_folders
    from workbench.training import TRAINING_LOG, training_seconds

    cost = trial.user_attrs.get("cost") or {}
    out: dict[str, Any] = {k: cost[k] for k in ("params", "gflops") if k in cost}
    folders = trial_seed_folders(trial, config)
    seconds = [training_seconds(folders[seed] / TRAINING_LOG) if seed in folders else None for seed in results]
    known = [s for s in seconds if s is not None]
    if known and len(known) == len(seconds):
        out["train_hours"] = sum(known) / 3600.0
    return out


def default_reference(labels: Sequence[str]) -> str:
    """The uniform tree when the study has one (the baseline a hierarchy must beat), else the first label."""
    uniform = [label for label in labels if label.startswith("uniform")]
    return (uniform or list(labels))[0]


def compare_trees(config: StudyConfig, study: optuna.Study, split: str = "validation",
                  reference: str | None = None, margin: float | None = None) -> TreeComparison | None:
    """The per-tree table of the study's complete trials on ``split``, or ``None`` when fewer than two
    configurations have saved evaluations there; ``margin`` adds the reading of ``margin_verdict``."""
    key = config.objectives[0].metric
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    groups: dict[str, dict[int, list[Any]]] = {}
    cuts: dict[str, list[int]] = {}
    splits: dict[str, list[list[int]]] = {}
    costs: dict[str, dict[str, Any]] = {}
    for trial in trials:
        results = replicate_results(trial, config, split)
        if not results:
            continue
        label = trial_label(trial)
        cuts[label] = trial_cuts(trial)
        splits[label] = list(trial.user_attrs.get("splits") or [])
        costs[label] = trial_costs(trial, config, results)
        for seed, result in results.items():
            groups.setdefault(label, {}).setdefault(seed, []).append(result)
    if len(groups) < 2:
        return None  # one configuration (or none) on this split: nothing to compare
    if reference is not None and reference not in groups:
        matches = [g for g in groups if g.split(" ")[0] == reference]
        if not matches:
            raise ValueError(f"reference {reference!r}: no complete trial of it on {split}; trees: {sorted(groups)}")
        reference = matches[0]
    reference = reference or default_reference(sorted(groups))
    probe = next(iter(next(iter(groups.values())).values()))[0]
    if key not in probe.summary():
        key = f"{key}_mean" if f"{key}_mean" in probe.summary() else probe.primary_metric
    rows = compare_configurations(groups, reference, key=key, cuts=cuts, splits=splits, extra=costs)
    return TreeComparison(split, key, reference, rows, verdict(rows, reference), _notes(trials), sizing(rows),
                          margin)


def _notes(trials: Sequence[FrozenTrial]) -> list[str]:
    choices = [trial_choices(t) for t in trials]
    varying = sorted({k for c in choices for k in c if k != "tree" and not k.startswith("cut_stage")
                      and len({repr(d.get(k)) for d in choices}) > 1})
    notes = []
    if varying:
        notes.append(f"trials differ in {', '.join(varying)}: each tree's figure pools its trials seed by seed, "
                     "so tree and these choices are confounded; a tree comparison fixes them "
                     "(see studies/tree-comparison-synthetic.toml)")
    fidelity = pruning_fidelity(trials)
    if fidelity is not None:
        rho, step, n = fidelity
        warn = " (below 0.5: early figures rank trials poorly; prune later or not at all)" if rho < 0.5 else ""
        notes.append(f"rank correlation of step-{step} figures with final figures over {n} complete trials: "
                     f"Spearman {rho:.2f}{warn}")
    return notes


#: Complete trials below which a rank correlation is not reported (with 3 or 4 it takes a handful of values).
FIDELITY_MIN_TRIALS = 5


def pruning_fidelity(trials: Sequence[FrozenTrial]) -> tuple[float, int, int] | None:
    """Spearman correlation between the first intermediate value and the final value, over complete trials.

    ``None`` when trials report no value before their last step (nothing was pruned on early figures),
    or fewer than ``FIDELITY_MIN_TRIALS`` complete trials have both.
    """
    from scipy import stats

    pairs = []
    steps = sorted({min(t.intermediate_values) for t in trials
                    if len(t.intermediate_values) >= 2})
    if not steps:
        return None
    step = steps[0]
    for t in trials:
        if step in t.intermediate_values and t.values:
            pairs.append((t.intermediate_values[step], t.values[0]))
    if len(pairs) < FIDELITY_MIN_TRIALS or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
        return None
    rho = stats.spearmanr([p[0] for p in pairs], [p[1] for p in pairs]).statistic
    return float(rho), int(step), len(pairs)


def forest_figure(comparison: TreeComparison, path: Path) -> Path:
    """Mean and 95 % interval per tree (left) and the paired delta to the reference (right)."""
    from matplotlib.figure import Figure

    rows = comparison.rows
    labels = [f"{r.name} (n={r.estimate.n_seeds})" for r in rows]
    # Long tree names take the room they need, so the two panels keep theirs.
    width = max(9.0, 6.0 + 0.075 * max(len(label) for label in labels))
    fig = Figure(figsize=(width, 0.5 * len(rows) + 1.8), layout="constrained")
    left, right = fig.subplots(1, 2, sharey=True)
    ys = list(range(len(rows)))[::-1]
    compared = sum(r.delta is not None for r in rows)
    widened_label: str | None = "Bonferroni-widened"  # the legend names the first widened bar only
    for y, r in zip(ys, rows, strict=True):
        e = r.estimate
        left.errorbar([e.mean], [y], xerr=[[e.mean - e.low], [e.high - e.mean]], fmt="o", color="tab:blue", capsize=3)
        if r.delta is not None:
            d = r.delta
            if comparison.margin is not None and compared > 1:
                # The widened interval the margin's reading uses, under the unadjusted one.
                low, high = margin_bounds(d, compared)
                right.plot([low, high], [y, y], color="tab:orange", lw=5, alpha=0.3, solid_capstyle="butt",
                           label=widened_label)
                widened_label = None
            colour = "tab:red" if r.p_holm is not None and r.p_holm < 0.05 else "0.4"
            right.errorbar([d.mean], [y], xerr=[[d.mean - d.low], [d.high - d.mean]], fmt="o", color=colour,
                           capsize=3)
    right.axvline(0.0, color="0.6", lw=1, ls="--")
    if comparison.margin is not None:  # the bar a configuration's interval must clear to match the reference
        right.axvline(-comparison.margin, color="tab:orange", lw=1, ls=":", label=f"-{comparison.margin:g} (margin)")
        right.legend(loc="best", fontsize="small")
    left.set_yticks(ys, labels)
    left.set_xlabel(f"{comparison.key} on {comparison.split} (%)\nmean and 95 % interval")
    # A long reference (a study's label) wraps instead of running into the left panel's label.
    reference = textwrap.fill(comparison.reference, 40, break_on_hyphens=False)
    right.set_xlabel(f"difference to\n{reference}\n(points, paired by seed)")
    fig.suptitle(f"trees compared on {comparison.split} subjects")
    fig.savefig(path, dpi=120)
    return path


def study_trial_label(study_name: str, trial: FrozenTrial) -> str:
    """``<study>: <tree> <cuts>``, a tree the study discovered named without the study's prefix again
    (``cut-choice: row-coherence-ward [1, 2, 4]``, not ``cut-choice: cut-choice-row-coherence-ward ...``)."""
    label = trial_label(trial)
    prefix = f"{study_name}-"
    return f"{study_name}: {label[len(prefix):] if label.startswith(prefix) else label}"


def compare_studies(studies: Sequence[tuple[StudyConfig, optuna.Study]], split: str = "test",
                    reference: str | None = None, margin: float | None = None) -> TreeComparison:
    """Every complete configuration of several studies, paired seed by seed with a reference.

    For recipes that one study cannot hold side by side (training length, data, model family): run one
    study per recipe on the same seeds and subjects, then compare them here. Each configuration is
    labelled ``<study>: <tree> <cuts>`` (``study_trial_label``); ``reference`` is a label, a study name
    (its first configuration) or a tree name that only one configuration carries (default: the first
    study's first configuration); ``margin`` adds the reading of ``margin_verdict``.
    The studies must score the same subjects on ``split``; the paired statistics refuse results of
    different subjects.
    """
    key = studies[0][0].objectives[0].metric
    groups: dict[str, dict[int, list[Any]]] = {}
    costs: dict[str, dict[str, Any]] = {}
    owners: dict[str, tuple[str, str]] = {}  # label -> (study, tree)
    for config, study in studies:
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            results = replicate_results(trial, config, split)
            label = study_trial_label(config.study.name, trial)
            owners[label] = (config.study.name, str(trial_choices(trial).get("tree", "?")))
            if results:
                costs[label] = trial_costs(trial, config, results)
            for seed, result in results.items():
                groups.setdefault(label, {}).setdefault(seed, []).append(result)
    names = [config.study.name for config, _ in studies]
    if len(groups) < 2:
        hint = " (run `workbench study test FILE --all` on each first)" if split == "test" else ""
        raise ValueError(f"studies {', '.join(names)}: {len(groups)} configuration(s) with saved {split} "
                         f"evaluations; a comparison needs two{hint}")
    labels = list(groups)
    if reference is None:
        reference = labels[0]
    elif reference not in groups:
        # A study name (its first configuration), or a tree name that one configuration alone carries.
        matches = [g for g in labels if owners[g][0] == reference]
        trees = [g for g in labels if owners[g][1] == reference]
        if not matches and len(trees) > 1:
            raise ValueError(f"reference {reference!r}: {len(trees)} configurations carry that tree; give one "
                             f"label of {trees}")
        if not matches and not trees:
            raise ValueError(f"reference {reference!r}: no configuration, study or tree of that name; choose "
                             f"one of {labels}")
        reference = (matches or trees)[0]
    probe = next(iter(groups[reference].values()))[0]
    if key not in probe.summary():
        key = f"{key}_mean" if f"{key}_mean" in probe.summary() else probe.primary_metric
    rows = compare_configurations(groups, reference, key=key, extra=costs)
    return TreeComparison(split, key, reference, rows, verdict(rows, reference, what="configuration"),
                          sizing=sizing(rows), margin=margin)
