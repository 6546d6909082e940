"""Pareto fronts over trial tables: the exact non-dominated set and a labelled scatter plot."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from workbench.tracking._compare import numeric_column, resolve_column, run_label

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_OBJECTIVES: dict[str, str] = {"rank1": "max", "gflops": "min"}
_DIRECTIONS = {"max": "max", "maximize": "max", "min": "min", "minimize": "min"}


def parse_objectives(specs: Iterable[str]) -> dict[str, str]:
    """Parse ``["rank1:max", "gflops:min"]`` into ``{"rank1": "max", "gflops": "min"}``."""
    objectives: dict[str, str] = {}
    for spec in specs:
        name, sep, direction = spec.rpartition(":")
        name = name.strip()
        if not sep or not name or direction.strip().lower() not in _DIRECTIONS:
            raise ValueError(f"objective {spec!r}: expected NAME:max or NAME:min, e.g. rank1:max gflops:min")
        if name in objectives:
            raise ValueError(f"objective {name!r} is given twice")
        objectives[name] = _DIRECTIONS[direction.strip().lower()]
    if not objectives:
        raise ValueError("give at least one objective, e.g. rank1:max gflops:min")
    return objectives


def _check_objectives(objectives: Mapping[str, str]) -> dict[str, str]:
    if not objectives:
        raise ValueError("give at least one objective, e.g. {'rank1': 'max', 'gflops': 'min'}")
    checked = {}
    for name, direction in objectives.items():
        key = str(direction).strip().lower()
        if key not in _DIRECTIONS:
            raise ValueError(f"objective {name!r}: direction {direction!r} must be 'max' or 'min'")
        checked[name] = _DIRECTIONS[key]
    return checked


def non_dominated(values: np.ndarray, maximize: Sequence[bool]) -> np.ndarray:
    """Boolean mask of the rows of ``values: [n, m]`` that no other row dominates.

    Row ``j`` dominates row ``i`` when it is at least as good in every objective and strictly
    better in one. Rows with a NaN are never on the front and dominate nothing; equal rows are
    both kept.
    """
    points = np.asarray(values, dtype=float)
    if points.ndim != 2 or points.shape[1] != len(maximize):
        raise ValueError(f"values must be [n, {len(maximize)}], got {list(points.shape)}")
    # Work in "smaller is better" for every objective.
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    cost = points * signs
    valid = ~np.isnan(cost).any(axis=1)
    front = valid.copy()
    candidates = cost[valid]
    for i in np.flatnonzero(valid):
        no_worse = (candidates <= cost[i]).all(axis=1)
        better = (candidates < cost[i]).any(axis=1)
        if (no_worse & better).any():
            front[i] = False
    return front


def pareto_mask(df: pd.DataFrame, objectives: Mapping[str, str] | None = None) -> np.ndarray:
    """Which trials of ``df`` are on the Pareto front of ``objectives`` (name -> ``max``/``min``)."""
    checked = _check_objectives(objectives or DEFAULT_OBJECTIVES)
    if df.empty:
        return np.zeros(0, dtype=bool)
    values = np.column_stack([numeric_column(df, name).to_numpy() for name in checked])
    return non_dominated(values, [d == "max" for d in checked.values()])


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The non-dominated trials of ``df``, best first by the first objective.

    Example: ``pareto_front(trials, {"rank1": "max", "gflops": "min"})``.
    """
    checked = _check_objectives(objectives or DEFAULT_OBJECTIVES)
    front = df.loc[pareto_mask(df, checked)]
    first, direction = next(iter(checked.items()))
    key = numeric_column(front, first)
    return front.loc[key.sort_values(ascending=direction == "min", kind="stable").index]


def pareto_figure(df: pd.DataFrame, objectives: Mapping[str, str] | None, out_png: str | Path,
                  title: str | None = None) -> Path:
    """Scatter the trials (first objective on y, second on x), front highlighted, points labelled.

    Every point carries a short label (tree and cuts). With more than two objectives the front is
    still computed over all of them; the plot shows the first two.
    """
    from matplotlib.figure import Figure

    checked = _check_objectives(objectives or DEFAULT_OBJECTIVES)
    if len(checked) < 2:
        raise ValueError(f"a Pareto figure needs two objectives, got {list(checked)}")
    (y_name, y_dir), (x_name, x_dir) = list(checked.items())[:2]
    x = numeric_column(df, x_name).to_numpy() if not df.empty else np.zeros(0)
    y = numeric_column(df, y_name).to_numpy() if not df.empty else np.zeros(0)
    finite = np.isfinite(x) & np.isfinite(y)
    if not finite.any():
        raise ValueError(f"no trial has finite values for both {y_name!r} and {x_name!r}; nothing to plot")
    on_front = pareto_mask(df, checked) & finite
    labels = [run_label(row) for _, row in df.iterrows()]
    # A bare Figure (no pyplot) keeps this free of global backend state and safe in worker threads.
    fig = Figure(figsize=(8, 6), dpi=120)
    ax = fig.subplots()
    rest = finite & ~on_front
    ax.scatter(x[rest], y[rest], s=30, color="0.6", label="dominated", zorder=2)
    order = np.flatnonzero(on_front)[np.argsort(x[on_front], kind="stable")]
    ax.step(x[order], y[order], where="post", color="tab:red", alpha=0.6, zorder=1)
    ax.scatter(x[order], y[order], s=60, color="tab:red", edgecolor="black", label="Pareto front", zorder=3)
    for i in np.flatnonzero(finite):
        ax.annotate(labels[i], (x[i], y[i]), xytext=(4, 4), textcoords="offset points", fontsize=7,
                    color="black" if on_front[i] else "0.35")
    ax.set_xlabel(f"{resolve_column(df, x_name).removeprefix('metrics.')} ({'higher' if x_dir == 'max' else 'lower'} is better)")
    ax.set_ylabel(f"{resolve_column(df, y_name).removeprefix('metrics.')} ({'higher' if y_dir == 'max' else 'lower'} is better)")
    skipped = int((~finite).sum())
    heading = title or f"Pareto front: {int(on_front.sum())} of {int(finite.sum())} trials"
    ax.set_title(heading + (f" ({skipped} without values not shown)" if skipped else ""))
    ax.grid(True, alpha=0.3)
    # GFLOPs of trees that share their convolutions differ in the last digits; an offset ("+4.13")
    # above the axis would make those digits look like the scale.
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
