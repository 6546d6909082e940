"""`workbench study curve`: validation figures along training per configuration and seed, and the plateau."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from workbench.cli import main
from workbench.search import load_study_config, open_storage, run_study
from workbench.search._curves import Curve, curves_text


def test_the_plateau_is_the_first_step_after_which_the_mean_never_gains_more_than_the_tolerance() -> None:
    rising_then_flat = Curve("uniform-64 [2, 4]", 0, {0: {100: 40.0, 200: 60.0, 300: 70.0, 400: 70.5, 500: 70.2},
                                                      1: {100: 42.0, 200: 58.0, 300: 71.0, 400: 71.5, 500: 71.9}})
    assert rising_then_flat.steps == [100, 200, 300, 400, 500]
    assert rising_then_flat.mean[300] == pytest.approx(70.5)
    assert rising_then_flat.plateau(1.0) == 300
    assert rising_then_flat.plateau(0.1) == 400, "a stricter tolerance waits for the later gain"
    assert rising_then_flat.spread(500) == pytest.approx(1.7)
    text = curves_text([rising_then_flat], tolerance=1.0)
    assert "plateau from step 300" in text and "70.50 (70.0, 71.0)" in text

    still_rising = Curve("casia-b-paper [2, 4]", 1, {0: {100: 40.0, 200: 50.0, 300: 60.0}})
    assert still_rising.plateau(1.0) is None
    assert "still rising at the last step, no plateau yet (+10.00 since step 200)" in curves_text([still_rising])

    one_point = Curve("uniform-64 [2, 4]", 2, {0: {200: 91.0}, 1: {200: 93.0}})
    assert one_point.plateau(1.0) is None, "one evaluation cannot show a plateau"
    assert "one evaluation so far, no curve yet" in curves_text([one_point])


def test_steps_some_seed_did_not_reach_are_left_out_of_the_mean() -> None:
    cut_short = Curve("t", 0, {0: {100: 1.0, 200: 2.0}, 1: {100: 3.0}})
    assert cut_short.steps == [100] and cut_short.mean == {100: 2.0}


def test_the_subjects_interval_rides_along_averaged_over_seeds() -> None:
    curve = Curve("t", 0, {0: {100: 50.0, 200: 60.0}, 1: {100: 54.0, 200: 62.0}},
                  {0: {100: (45.0, 55.0), 200: (56.0, 64.0)}, 1: {100: (49.0, 59.0)}})
    # Step 200 lacks seed 1's interval, so no band there rather than one seed's passed off as the mean's.
    assert curve.band == {100: (47.0, 57.0)}
    assert Curve("t", 0, {0: {100: 50.0}}).band == {}


def test_study_curve_prints_each_evaluation_of_each_seed_and_draws_them(write_study, tmp_path: Path, capsys) -> None:
    path = write_study(name="curve", trials=1, iterations=4, extra="")
    path.write_text(path.read_text().replace("[budget]", "[budget]\nseeds = 2"))
    run_study(path)
    capsys.readouterr()
    out_dir = tmp_path / "figures"
    assert main(["study", "curve", str(path), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "mean over seeds 0, 1" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [row[0] for row in rows] == ["2", "4"], out
    assert "(trial 0)" in out and "plateau" in out
    assert "] over the subjects at step 4" in out, "the last evaluation carries its subjects' interval"
    assert (out_dir / "learning-curve.png").stat().st_size > 0
    assert main(["study", "curve", str(path), "--tolerance", "-1"]) == 2

    # A trial still training shows its curve so far, marked as running.
    config = load_study_config(path)
    study = optuna.load_study(study_name="curve", storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))
    done = study.trials[0]
    running = study.ask()
    for key in ("output_dir", "seeds", "fixed_choices", "cuts"):
        if key in done.user_attrs:
            running.set_user_attr(key, done.user_attrs[key])
    assert main(["study", "curve", str(path), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert f", running (trial {running.number})" in out and "(trial 0)" in out, out


def test_curves_of_several_studies_side_by_side_on_one_schedule(write_study, tmp_path: Path, capsys) -> None:
    one_tree = '["uniform-64"]'
    first = write_study(name="first", trials=1, iterations=4, presets=one_tree)
    second = write_study(name="second", trials=1, iterations=4, presets='["casia-b-paper"]')
    for path in (first, second):
        path.write_text(path.read_text().replace("fta = [true, false]", "fta = [true]"))
        assert run_study(path).complete == 1
    capsys.readouterr()
    out_dir = tmp_path / "figures"
    assert main(["study", "curve", str(first), str(second), "--out", str(out_dir)]) == 0
    out = capsys.readouterr().out
    assert "first: uniform-64 [1, 2, 4] (trial 0)" in out and "second: casia-b-paper [1, 2, 4] (trial 0)" in out
    assert (out_dir / "learning-curve-studies.png").stat().st_size > 0
    assert not (out_dir / "learning-curve.png").exists()
    # Plateaus are read before the first drop, so studies on other schedules are not drawn as one.
    dropped = write_study(name="dropped", trials=1, iterations=4, presets=one_tree)
    dropped.write_text(dropped.read_text().replace("[train]\n", "[train]\nscheduler = {milestones = [2]}\n"))
    assert main(["study", "curve", str(first), str(dropped)]) == 2
    assert "dropped: its learning rate drops after [2], first's after []" in capsys.readouterr().err


def test_a_plateau_is_read_before_the_first_learning_rate_drop() -> None:
    # The drop after step 1200 lifts the curve by 2.5 points; the curve had flattened at 800 already.
    flat_then_dropped = Curve("uniform-64 [2, 4]", 0, {7: {400: 80.0, 800: 90.0, 1200: 90.5, 1600: 93.0}})
    assert flat_then_dropped.plateau(1.0) is None, "read over the drop, the lift looks like more rising"
    assert flat_then_dropped.first_drop([1200]) == 1200
    assert flat_then_dropped.plateau(1.0, until=1200) == 800
    text = curves_text([flat_then_dropped], tolerance=1.0, drops=[1200])
    assert "each plateau is read before the first drop" in text
    assert "plateau from step 800 (+0.50 after it to step 1200, before the drop after step 1200); " \
           "+2.50 from step 1200 to step 1600, the drop's gain included" in text
    assert "still rising at the last step" in curves_text([flat_then_dropped], tolerance=1.0)

    # Still rising when the rate falls (the plateau headline's casia-b-paper mean, seeds 7-9).
    rising = Curve("casia-b-paper [2, 4]", 1, {7: {400: 87.89, 800: 93.41, 1200: 95.24, 1600: 96.05}})
    assert "still rising at step 1200, before the drop after step 1200, no plateau yet (+1.83 since step 800); " \
           "+0.81 from step 1200 to step 1600" in curves_text([rising], drops=[1200])

    # A drop between evaluations: the plateau is read on the evaluations before it.
    assert "still rising at step 800, before the drop after step 1000" in curves_text([flat_then_dropped], drops=[1000])
    # A drop at or past the last evaluation changes nothing.
    assert curves_text([flat_then_dropped], drops=[1600]) == curves_text([flat_then_dropped])
    assert flat_then_dropped.first_drop([1600, 2000]) is None


def test_columns_stay_apart_with_many_seeds() -> None:
    seeds = {s: {400: 87.5 + s / 10, 800: 93.0} for s in range(7, 12)}
    text = curves_text([Curve("paper", 0, seeds), Curve("uniform", 1, seeds)])
    row = next(line for line in text.splitlines() if line.strip().startswith("400"))
    assert re.split(r"\s{2,}", row.strip()) == ["400", "88.40 (88.2, 88.3, 88.4, 88.5, 88.6)",
                                                 "88.40 (88.2, 88.3, 88.4, 88.5, 88.6)"], row
