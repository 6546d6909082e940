"""Report notes that keep a reader from over-reading a front or a ranking."""

from __future__ import annotations

import optuna

from workbench.search._report import tree_cost_note


def _trial(tree: str, cuts: int, rank1: float, gflops: float) -> optuna.trial.FrozenTrial:
    distributions = {"tree": optuna.distributions.CategoricalDistribution(["a", "b"]),
                     "cut_stage2": optuna.distributions.CategoricalDistribution([2, 4])}
    return optuna.trial.create_trial(params={"tree": tree, "cut_stage2": cuts}, distributions=distributions,
                                     values=[rank1, gflops])


def test_the_pareto_report_says_how_little_the_tree_moves_the_cost() -> None:
    trials = [_trial("a", 2, 80.0, 10.000), _trial("b", 2, 82.0, 10.001), _trial("a", 4, 85.0, 14.0)]
    note = tree_cost_note(trials, 1, "gflops")
    assert "differ by at most 0.01 %" in note and "1 such group" in note
    assert tree_cost_note(trials, 0, "rank1") == ""  # accuracy is what the trees are compared on
    assert tree_cost_note(trials[:1] + trials[2:], 1, "gflops") == ""  # no two trials differ by tree alone
