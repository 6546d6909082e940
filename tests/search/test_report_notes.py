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


def test_the_history_shows_pruned_trials_apart_and_counts_trials_in_whole_numbers(tmp_path, monkeypatch) -> None:
    from matplotlib.axes import Axes

    from workbench.search._report import build_report

    study = optuna.create_study(direction="maximize")
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(optuna.trial.create_trial(params={"x": 0.5}, distributions=distributions, value=70.0))
    study.add_trial(optuna.trial.create_trial(params={"x": 0.2}, distributions=distributions,
                                              state=optuna.trial.TrialState.PRUNED, intermediate_values={10: 55.0}))
    drawn: list[tuple] = []
    original = Axes.scatter

    def spy(self, x, y, *args, **kwargs):
        drawn.append((list(x), list(y), kwargs.get("label")))
        return original(self, x, y, *args, **kwargs)

    monkeypatch.setattr(Axes, "scatter", spy)
    report = build_report(study, ["rank1"], tmp_path)
    assert (tmp_path / "history.png").is_file() and tmp_path / "history.png" in report.figures
    by_label = {label: (x, y) for x, y, label in drawn}
    assert by_label["complete"] == ([0], [70.0])
    assert by_label["pruned (figure at its last step)"] == ([1], [55.0])


def test_importances_of_a_maximised_first_objective_explain_its_high_values(tmp_path) -> None:
    # Only a > 0.9 reaches rank-1 100; b does nothing. Explaining *low* rank-1 (Optuna's default reading
    # of a target) would find no parameter that matters.
    import numpy as np

    from workbench.search._report import build_report

    rng = np.random.default_rng(0)
    study = optuna.create_study(directions=["maximize", "minimize"])
    distributions = {"a": optuna.distributions.FloatDistribution(0, 1),
                     "b": optuna.distributions.FloatDistribution(0, 1)}
    for _ in range(60):
        a, b = float(rng.random()), float(rng.random())
        rank1 = 100.0 if a > 0.9 else 50.0 + float(rng.normal(0, 0.01))
        study.add_trial(optuna.trial.create_trial(params={"a": a, "b": b}, distributions=distributions,
                                                  values=[rank1, 1.0]))
    report = build_report(study, ["rank1", "gflops"], tmp_path)
    assert report.importances["a"] > 2 * report.importances["b"], report.importances


def test_a_study_that_searches_one_parameter_prints_no_importances(tmp_path) -> None:
    # A tree comparison varies only the tree: its importance would be 1.000 whatever the figures.
    from workbench.search._report import build_report

    study = optuna.create_study(direction="maximize")
    distributions = {"tree": optuna.distributions.CategoricalDistribution(["a", "b", "c"])}
    for tree, rank1 in (("a", 90.0), ("b", 90.1), ("c", 89.9)):
        study.add_trial(optuna.trial.create_trial(params={"tree": tree}, distributions=distributions, value=rank1))
    report = build_report(study, ["rank1"], tmp_path)
    assert report.importances == {}
    assert "parameter importances" not in report.text()


def test_the_best_trials_regions_survive_a_moved_project() -> None:
    """The report shows each best trial's region heights as the trial recorded them, so a record whose
    tree files were moved away (an exported record, another machine) still shows them."""
    from workbench.search._report import _splits

    distributions = {"tree": optuna.distributions.CategoricalDistribution(["mine", "casia-b-paper"])}
    recorded = optuna.trial.create_trial(
        params={"tree": "mine"}, distributions=distributions, value=90.0,
        user_attrs={"tree_source": "/gone/hierarchies/mine.json", "cuts": [1, 2, 4],
                    "splits": [[64], [19, 13], [16, 3, 10, 3]]})
    assert _splits(recorded) == [[64], [19, 13], [16, 3, 10, 3]]
    # A trial from before the attribute was recorded: cut again from its tree, where the tree still is.
    older = optuna.trial.create_trial(params={"tree": "casia-b-paper"}, distributions=distributions, value=90.0,
                                      user_attrs={"cuts": [2, 4]})
    assert _splits(older) == [[40, 24], [8, 32, 16, 8]]
