"""Pareto fronts checked by hand, and against a brute-force definition on random points."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.tracking import non_dominated, pareto_figure, pareto_front, pareto_mask, parse_objectives

NAN = math.nan


def _trials(points: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame({
        "run_name": list(points),
        "metrics.rank1": [p[0] for p in points.values()],
        "metrics.gflops": [p[1] for p in points.values()],
        "params.tree_name": [f"tree-{k}" for k in points],
        "params.cuts": ["[1, 2, 4]"] * len(points),
    })


def test_hand_case_accuracy_against_cost() -> None:
    df = _trials({
        "A": (0.90, 50.0),   # front
        "B": (0.80, 20.0),   # front: cheapest
        "C": (0.85, 60.0),   # dominated by A (worse and dearer)
        "D": (0.80, 25.0),   # dominated by B (same accuracy, dearer)
        "E": (0.95, 100.0),  # front: most accurate
        "F": (0.90, 50.0),   # equal to A: neither dominates, both stay
        "G": (NAN, 1.0),     # no accuracy: never on the front, dominates nothing
    })
    mask = pareto_mask(df, {"rank1": "max", "gflops": "min"})
    assert list(df.loc[mask, "run_name"]) == ["A", "B", "E", "F"]
    front = pareto_front(df, {"rank1": "max", "gflops": "min"})
    assert list(front["run_name"]) == ["E", "A", "F", "B"]  # best rank-1 first


def test_directions_matter() -> None:
    df = _trials({"A": (0.9, 50.0), "B": (0.8, 20.0), "C": (0.7, 10.0)})
    assert list(pareto_front(df, {"rank1": "min", "gflops": "max"})["run_name"]) == ["C", "B", "A"]
    assert list(pareto_front(df, {"rank1": "max", "gflops": "max"})["run_name"]) == ["A"]
    assert list(pareto_front(df, {"rank1": "min", "gflops": "min"})["run_name"]) == ["C"]


def test_single_objective_keeps_all_ties_for_best() -> None:
    df = _trials({"A": (0.9, 1.0), "B": (0.9, 2.0), "C": (0.5, 0.1)})
    assert list(pareto_front(df, {"rank1": "max"})["run_name"]) == ["A", "B"]


def test_three_objectives_by_hand() -> None:
    values = np.array([
        [1.0, 1.0, 1.0],   # best in everything: dominates the rest except 2
        [2.0, 2.0, 2.0],
        [0.5, 3.0, 3.0],   # better first objective than row 0: survives
        [1.0, 1.0, 1.0],   # equal to row 0: survives
    ])
    assert non_dominated(values, [False, False, False]).tolist() == [True, False, True, True]


def test_matches_brute_force_definition_on_random_points() -> None:
    rng = np.random.default_rng(0)
    values = rng.integers(0, 6, size=(60, 3)).astype(float)  # small ints: many ties
    maximize = [True, False, True]
    cost = values * np.where(maximize, -1.0, 1.0)
    expected = [
        not any(np.all(cost[j] <= cost[i]) and np.any(cost[j] < cost[i]) for j in range(len(cost)))
        for i in range(len(cost))
    ]
    assert non_dominated(values, maximize).tolist() == expected


def test_objectives_are_validated() -> None:
    df = _trials({"A": (0.9, 1.0)})
    with pytest.raises(ValueError, match=r"'best'.*'max' or 'min'"):
        pareto_mask(df, {"rank1": "best"})
    with pytest.raises(ValueError, match=r"no column or metric named 'mAP'.*gflops, rank1"):
        pareto_mask(df, {"mAP": "max"})
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        non_dominated(np.zeros((3, 3)), [True, False])


def test_parse_objectives() -> None:
    assert parse_objectives(["rank1:max", "gflops:MIN"]) == {"rank1": "max", "gflops": "min"}
    assert parse_objectives(["metrics.a:b:minimize"]) == {"metrics.a:b": "min"}
    for bad in (["rank1"], ["rank1:up"], [":max"], []):
        with pytest.raises(ValueError, match=r"NAME:max|at least one"):
            parse_objectives(bad)
    with pytest.raises(ValueError, match="twice"):
        parse_objectives(["a:max", "a:min"])


def test_figure_is_written_and_needs_plottable_points(tmp_path: Path) -> None:
    df = _trials({"A": (0.9, 50.0), "B": (0.8, 20.0), "C": (0.85, 60.0), "G": (NAN, 1.0)})
    out = pareto_figure(df, {"rank1": "max", "gflops": "min"}, tmp_path / "figs" / "pareto.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(out) as image:
        assert image.size == (960, 720)
    empty = _trials({"G": (NAN, 1.0)})
    with pytest.raises(ValueError, match="no trial has finite values"):
        pareto_figure(empty, {"rank1": "max", "gflops": "min"}, tmp_path / "none.png")
    with pytest.raises(ValueError, match="two objectives"):
        pareto_figure(df, {"rank1": "max"}, tmp_path / "one.png")


def test_the_figure_shows_plain_values_without_an_axis_offset(tmp_path: Path, monkeypatch) -> None:
    # GFLOPs of trees that share their convolutions differ in the sixth digit: with an offset the axis
    # would read "+4.131" above ticks of 0.000001.
    from matplotlib.figure import Figure

    saved: list[Figure] = []
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: saved.append(self))
    df = _trials({"A": (0.90, 4.131001), "B": (0.80, 4.131002), "C": (0.85, 4.131003)})
    pareto_figure(df, {"rank1": "max", "gflops": "min"}, tmp_path / "pareto.png")
    (ax,) = saved[0].axes
    for axis in (ax.xaxis, ax.yaxis):
        formatter = axis.get_major_formatter()
        assert not formatter.get_useOffset() and formatter.get_offset() == ""
