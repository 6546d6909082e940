"""Learning curves of a study's trials: validation figures along training, per seed and averaged.

How long must a recipe train before a comparison is about the configurations and not about where each
run happened to stop? Each trial evaluates its validation subjects every ``budget.eval_every``
iterations and records the figures in each seed's training log (``metrics.jsonl``, which exported
records keep; MLflow has them too, as ``val/<metric>`` or ``val/seed<s>/<metric>``); this module reads
the logs back, averages each configuration over its seeds, and finds where the mean stops
rising: the **plateau step** is the first evaluation after which the mean never gains more than
``tolerance`` points. Each evaluation also logged its 95 % interval over the validation subjects
(``..._ci_low`` / ``..._ci_high``); the curve carries it (averaged over seeds), so a rise can be read
against how far the subjects alone would move it. Read-only on the stores; a figure is drawn only where asked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from optuna.trial import TrialState

from workbench.search._config import StudyConfig
from workbench.search._report import trial_label

#: Points of rank-1 (or of whatever metric) below which a later gain does not count as still rising.
DEFAULT_TOLERANCE = 1.0


@dataclass(frozen=True)
class Curve:
    """One configuration's validation figures along training.

    ``seeds`` maps each training seed to its ``{step: value}``; ``mean`` averages the seeds at the
    steps every seed reached. ``intervals`` maps each seed to its ``{step: (low, high)}``, the 95 %
    interval over validation subjects each evaluation logged (empty where none was).
    """

    label: str
    trial: int
    seeds: Mapping[int, Mapping[int, float]]
    intervals: Mapping[int, Mapping[int, tuple[float, float]]] = field(default_factory=dict)

    @cached_property
    def steps(self) -> list[int]:
        common = set.intersection(*(set(v) for v in self.seeds.values())) if self.seeds else set()
        return sorted(common)

    @cached_property
    def mean(self) -> dict[int, float]:
        return {s: sum(v[s] for v in self.seeds.values()) / len(self.seeds) for s in self.steps}

    def plateau(self, tolerance: float = DEFAULT_TOLERANCE, until: int | None = None) -> int | None:
        """The first step after which the mean never rises by more than ``tolerance``.

        ``None`` until a later evaluation confirms it: with one evaluation, or while the last one still
        gained more than the tolerance, there is no plateau to name. ``until`` reads only the steps up
        to it (the evaluations before a learning-rate drop, see ``first_drop``).
        """
        mean = self.mean
        steps = [s for s in self.steps if until is None or s <= until]
        for i, step in enumerate(steps[:-1]):
            if all(mean[later] - mean[step] <= tolerance for later in steps[i + 1:]):
                return step
        return None

    @cached_property
    def band(self) -> dict[int, tuple[float, float]]:
        """The subjects' 95 % interval at each step of ``mean``, averaged over seeds (steps every seed logged one)."""
        out = {}
        for step in self.steps:
            pairs = [v[step] for v in self.intervals.values() if step in v]
            if len(pairs) == len(self.seeds):  # every seed reached ``step``, so there is at least one
                out[step] = (sum(p[0] for p in pairs) / len(pairs), sum(p[1] for p in pairs) / len(pairs))
        return out

    def first_drop(self, drops: Sequence[int]) -> int | None:
        """The first learning-rate drop (a step after which the rate falls) with evaluations on both sides.

        The evaluation at a drop's step ran before the rate fell; a rise after it is as much the drop's
        doing as more training's, so a plateau is read on the evaluations up to it.
        """
        inside = self.drops_within(drops)
        return min(inside) if inside else None

    def drops_within(self, drops: Sequence[int]) -> list[int]:
        """The drops from the curve's first evaluation up to (not at) its last: those it shows both sides of."""
        steps = self.steps
        return [d for d in drops if steps and steps[0] <= d < steps[-1]]

    def spread(self, step: int) -> float:
        """Largest minus smallest seed at ``step`` (0 for one seed)."""
        values = [v[step] for v in self.seeds.values() if step in v]
        return max(values) - min(values) if values else math.nan


#: How a trial that has not completed is marked in its curve's label.
_STATE_NOTES = {TrialState.RUNNING: "running", TrialState.PRUNED: "pruned", TrialState.FAIL: "stopped"}


def read_curves(study: Any, config: StudyConfig, metric: str = "rank1", study_label: bool = False) -> list[Curve]:
    """Every trial's validation ``metric`` history, one ``Curve`` each, from the training log of each of
    its seeds (``metrics.jsonl`` in the seed's folder, which an exported record keeps too).

    Trials still training are included (watch a study's curves while it runs), as are pruned trials and
    trials that stopped; their labels say so. Trials without a folder (skipped repeats) or without any
    logged evaluation are left out. ``study_label`` labels each curve ``<study>: <tree> <cuts>``
    (``study_trial_label``), for curves of several studies side by side. Reads only.
    """
    from workbench.search._replicates import trial_seed_folders
    from workbench.search._tree_report import study_trial_label
    from workbench.training import TRAINING_LOG, logged_evaluations

    curves = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, *_STATE_NOTES)):
        seeds: dict[int, dict[int, float]] = {}
        intervals: dict[int, dict[int, tuple[float, float]]] = {}
        for seed, folder in trial_seed_folders(trial, config).items():
            logged = {step: figures for step, figures in logged_evaluations(folder / TRAINING_LOG).items()
                      if step > 0 and metric in figures}
            if not logged:
                continue
            seeds[seed] = {step: figures[metric] for step, figures in logged.items()}
            intervals[seed] = {step: (figures[f"{metric}_ci_low"], figures[f"{metric}_ci_high"])
                               for step, figures in logged.items()
                               if f"{metric}_ci_low" in figures and f"{metric}_ci_high" in figures}
        if seeds:
            note = _STATE_NOTES.get(trial.state)
            label = study_trial_label(config.study.name, trial) if study_label else trial_label(trial)
            curves.append(Curve(label + (f", {note}" if note else ""), trial.number, seeds, intervals))
    return curves


def curves_text(curves: Sequence[Curve], metric: str = "rank1", tolerance: float = DEFAULT_TOLERANCE,
                drops: Sequence[int] = ()) -> str:
    """A table (steps down, configurations across: mean over seeds, seeds in brackets) and each plateau.

    ``drops`` are the steps after which the learning rate falls (the schedule's milestones): where one
    lies inside a curve, its plateau is read on the evaluations up to the first, and the lift from
    there to the last evaluation is shown apart, as the drop's and the later training's together.
    """
    if not curves:
        return (f"no validation {metric} along training: no complete or pruned trial logged one (the study's "
                "budget.eval_every sets how often trials evaluate)")
    steps = sorted(set().union(*(c.steps for c in curves)))
    # Wide enough for each header and for a cell of every seed (the mean and each seed in brackets).
    cell = max(len(f"100.00 ({', '.join(['100.0'] * len(c.seeds))})") for c in curves)
    width = max(24, cell + 2, *(len(f"{c.label} (trial {c.trial})") + 2 for c in curves))
    seeds = sorted(set().union(*(c.seeds for c in curves)))
    lines = [f"validation {metric} along training: mean over seeds {', '.join(map(str, seeds))} (each seed in "
             "brackets)",
             f"{'step':>6}  " + "".join(f"{c.label} (trial {c.trial})".ljust(width) for c in curves)]
    for step in steps:
        cells = []
        for c in curves:
            if step in c.mean:
                each = ", ".join(f"{c.seeds[s][step]:.1f}" for s in sorted(c.seeds))
                cells.append(f"{c.mean[step]:.2f} ({each})".ljust(width))
            else:
                cells.append("-".ljust(width))
        lines.append(f"{step:>6}  " + "".join(cells))
    lines.append(f"plateau: the first step after which the mean never gains more than {tolerance:g} points")
    if any(c.first_drop(drops) is not None for c in curves):
        lines.append(f"the learning rate drops after step {', '.join(map(str, drops))}: a gain after a drop is the "
                     "drop's as much as more training's, so each plateau is read before the first drop")
    for c in curves:
        last = c.steps[-1] if c.steps else None
        if last is None:
            continue
        drop = c.first_drop(drops)
        read = [s for s in c.steps if drop is None or s <= drop]  # the evaluations the plateau is read on
        end = read[-1]
        plateau = c.plateau(tolerance, until=drop)
        if len(c.steps) == 1:
            state = "one evaluation so far, no curve yet"
        elif len(read) == 1:
            state = f"one evaluation before the learning-rate drop after step {drop}, no plateau to read"
        elif plateau is None:  # the last evaluation read still gained more than the tolerance
            where = "at the last step" if drop is None else f"at step {end}, before the drop after step {drop}"
            state = f"still rising {where}, no plateau yet ({c.mean[end] - c.mean[read[-2]]:+.2f} since step {read[-2]})"
        else:
            state = f"plateau from step {plateau} ({c.mean[end] - c.mean[plateau]:+.2f} after it" + \
                    ("" if drop is None else f" to step {end}, before the drop after step {drop}") + ")"
        if drop is not None:
            state += f"; {c.mean[last] - c.mean[end]:+.2f} from step {end} to step {last}, the drop's gain included"
        band = c.band.get(last)
        within = f" [{band[0]:.2f}, {band[1]:.2f}] over the subjects" if band else ""
        lines.append(f"  {c.label} (trial {c.trial}): {state}; {c.mean[last]:.2f}{within} at step {last}, seeds "
                     f"{c.spread(last):.1f} points apart there")
    return "\n".join(lines)


def plot_curves(curves: Sequence[Curve], path: Path, metric: str = "rank1",
                tolerance: float = DEFAULT_TOLERANCE, drops: Sequence[int] = ()) -> Path:
    """Draw each configuration's mean (thick), seeds (thin) and the subjects' 95 % interval (shaded), with its
    plateau (read before the first learning-rate drop, as in ``curves_text``) and the drops marked; writes
    ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for index, c in enumerate(curves):
        colour = f"C{index}"
        for _, values in sorted(c.seeds.items()):
            steps = sorted(values)
            ax.plot(steps, [values[s] for s in steps], color=colour, lw=0.8, alpha=0.45)
        mean = c.mean
        ax.plot(list(mean), list(mean.values()), color=colour, lw=2.2, label=f"{c.label} (mean of {len(c.seeds)})")
        band = c.band
        if band:
            ax.fill_between(list(band), [b[0] for b in band.values()], [b[1] for b in band.values()],
                            color=colour, alpha=0.12, lw=0)
        plateau = c.plateau(tolerance, until=c.first_drop(drops))
        if plateau is not None:
            ax.axvline(plateau, color=colour, ls=":", lw=1)
    shown = sorted({d for c in curves for d in c.drops_within(drops)})
    for drop in shown:
        ax.axvline(drop, color="grey", ls="--", lw=0.8)
    ax.set_xlabel("iteration" + (f" (dashed: learning-rate drop after {', '.join(map(str, shown))})" if shown else ""))
    ax.set_ylabel(f"validation {metric}")
    ax.set_title(f"learning curves (shaded: 95 % interval over the validation subjects; dotted: plateau, "
                 f"gains after it <= {tolerance:g} points)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


__all__ = ["DEFAULT_TOLERANCE", "Curve", "curves_text", "plot_curves", "read_curves"]
