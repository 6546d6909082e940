"""Recipes one study cannot hold side by side (here: training length), compared across studies seed by seed."""

from __future__ import annotations

import pytest

from workbench.cli import main
from workbench.search import run_study


@pytest.mark.parametrize(("tree", "label"), [
    ("cut-choice-row-coherence-ward", "cut-choice: row-coherence-ward [1, 2, 4]"),
    ("casia-b-paper", "cut-choice: casia-b-paper [1, 2, 4]"),
    ("cut-choice2-row-coherence-ward", "cut-choice: cut-choice2-row-coherence-ward [1, 2, 4]"),
])
def test_a_tree_the_study_discovered_is_labelled_without_the_study_name_twice(tree: str, label: str) -> None:
    import optuna

    from workbench.search._tree_report import study_trial_label

    trial = optuna.trial.create_trial(params={"tree": tree, "cut_stage2": 2, "cut_stage3": 4},
                                      distributions={"tree": optuna.distributions.CategoricalDistribution([tree]),
                                                     "cut_stage2": optuna.distributions.IntDistribution(1, 8),
                                                     "cut_stage3": optuna.distributions.IntDistribution(1, 8)},
                                      value=90.0)
    assert study_trial_label("cut-choice", trial) == label


@pytest.mark.slow
def test_two_studies_are_paired_seed_by_seed_on_the_same_subjects(write_study, capsys) -> None:
    one_tree = '["uniform-64"]'
    extra = "[train.model]\nname = \"hstl-small\"\n"
    short = write_study(name="short", trials=1, iterations=2, presets=one_tree, extra=extra)
    long = write_study(name="long", trials=1, iterations=4, presets=one_tree, extra=extra)
    for path in (short, long):
        text = path.read_text().replace("fta = [true, false]", "fta = [true]").replace(
            "eval_every = 2", "eval_every = 2\nseeds = 2")
        path.write_text(text)
        assert run_study(path).complete == 1
    capsys.readouterr()
    assert main(["study", "compare", str(long), str(short), "--split", "validation"]) == 0
    out = capsys.readouterr().out
    assert "comparison of studies on validation subjects" in out
    assert "long: uniform-64 [1, 2, 4]" in out and "short: uniform-64 [1, 2, 4]" in out
    assert "delta paired seed by seed against long: uniform-64 [1, 2, 4]" in out
    assert "verdict: " in out and "configuration" in out
    assert main(["study", "compare", str(long), str(short), "--split", "test"]) == 2
    assert "study test" in capsys.readouterr().err, "test figures need the test step first"
    assert main(["study", "compare", str(long), str(short), "--split", "validation", "--reference", "short"]) == 0
    assert "delta paired seed by seed against short: uniform-64 [1, 2, 4]" in capsys.readouterr().out
    # A margin reads each configuration against the reference: matches, beats, trails or not shown.
    assert main(["study", "compare", str(long), str(short), "--split", "validation", "--margin", "0.5"]) == 0
    (line,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("margin 0.5: ")]
    assert line.startswith("margin 0.5: short: uniform-64 [1, 2, 4] ")
    assert any(w in line for w in (" beats ", " matches ", " trails ", " is not shown to match "))
    assert main(["study", "compare", str(long), str(short), "--margin", "0"]) == 2
    assert "--margin 0.0: give a positive number of points" in capsys.readouterr().err
    # The forest plot only where asked.
    figure = short.parent / "figs" / "studies.png"
    assert main(["study", "compare", str(long), str(short), "--split", "validation", "--margin", "0.5",
                 "--out", str(figure)]) == 0
    assert f"figure: {figure}" in capsys.readouterr().out and figure.stat().st_size > 0
    assert main(["study", "compare", str(long), str(short), "--out", str(figure.with_suffix(".pdf"))]) == 2
    # A tree name both studies carry does not say which to pair with; one no configuration carries neither.
    assert main(["study", "compare", str(long), str(short), "--split", "validation", "--reference", "uniform-64"]) == 2
    assert "2 configurations carry that tree" in capsys.readouterr().err
    assert main(["study", "compare", str(long), str(short), "--split", "validation", "--reference", "paper"]) == 2
    assert "no configuration, study or tree of that name" in capsys.readouterr().err
