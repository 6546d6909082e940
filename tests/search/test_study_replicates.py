"""`[budget] seeds = N`: every configuration trains on the same N seeds; the objective is their mean."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from workbench.search import _replicates as replicates
from workbench.search import load_study_config, open_storage, prepare_study, run_study
from workbench.tracking import load_trials

pytestmark = pytest.mark.slow


def test_replicates_train_every_seed_log_each_and_resume_without_retraining(write_study, monkeypatch) -> None:
    path = write_study(name="seeds", trials=1, iterations=4)
    path.write_text(path.read_text().replace("eval_every = 2", "eval_every = 2\nseeds = 2")
                    .replace("fta = [true, false]", "fta = [true]"))
    summary = run_study(path)
    assert (summary.complete, summary.failed) == (1, 0)
    config = load_study_config(path)
    study = optuna.load_study(study_name="seeds", storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))
    trial = study.trials[0]
    folder = Path(trial.user_attrs["output_dir"])
    assert trial.user_attrs["seeds"] == [0, 1]
    for seed in (0, 1):
        assert (folder / f"seed-{seed}" / "evaluation" / "subject_scores.npz").is_file()

    row = load_trials(config.tracking.uri, config.experiment_name).iloc[0]
    per_seed = [row[f"metrics.val/seed{s}/rank1"] for s in (0, 1)]
    assert row["metrics.val/rank1"] == pytest.approx(sum(per_seed) / 2)
    assert trial.value == pytest.approx(row["metrics.val/rank1"])
    assert row["metrics.val/rank1_ci_low"] <= row["metrics.val/rank1"] <= row["metrics.val/rank1_ci_high"]

    # Confirmation trains fresh seeds (2, never used by the search) beside the trial's own.
    from workbench.cli import main

    assert main(["study", "replicate", str(path), "--top", "1", "--seeds", "1"]) == 0
    assert (folder / "confirm" / "seed-2" / "evaluation" / "subject_scores.npz").is_file()
    row = load_trials(config.tracking.uri, config.experiment_name).iloc[0]
    assert "metrics.confirm/rank1" in row.index and row["metrics.confirm/rank1"] >= 0

    # A retried trial finds both seeds evaluated and reads them back instead of training again.
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a seed that was already evaluated was trained again")

    monkeypatch.setattr(replicates, "Trainer", no_training)
    prepared = prepare_study(config, progress=False)
    again = replicates.train_replicates(config, prepared, trial, None, config.train, folder)  # type: ignore[arg-type]
    assert [r.seed for r in again] == [0, 1]
    assert [r.result.summary()["rank1"] for r in again] == pytest.approx(per_seed)
    # Read back, each seed still costs what its training took (its log), not nothing.
    from workbench.training import TRAINING_LOG, training_seconds

    logged = [training_seconds(folder / f"seed-{s}" / TRAINING_LOG) for s in (0, 1)]
    assert all(s and s > 0 for s in logged)
    assert [r.seconds for r in again] == pytest.approx(logged)
    assert replicates.replicate_scores(again, "rank1")["rank1"] == pytest.approx(row["metrics.val/rank1"])
    assert main(["study", "replicate", str(path), "--seeds", "1"]) == 0  # read back, not retrained


def test_a_grid_study_compares_trees_on_shared_seeds_then_on_test(write_study, capsys) -> None:
    import json

    from workbench.cli import main

    path = write_study(name="grid", trials=2, iterations=4)
    path.write_text(path.read_text().replace("eval_every = 2", "eval_every = 2\nseeds = 2")
                    .replace("fta = [true, false]", "fta = [true]")
                    .replace('name = "random"', 'name = "grid"'))
    summary = run_study(path)
    assert (summary.complete, summary.failed) == (2, 0)
    config = load_study_config(path)
    study = optuna.load_study(study_name="grid", storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))
    assert sorted(t.params["tree"] for t in study.trials) == ["casia-b-paper", "uniform-64"]  # each tree once

    capsys.readouterr()
    assert main(["study", "report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "per-tree comparison on validation subjects" in out and "verdict: " in out
    report_dir = config.project_dir / "reports" / "grid"
    report = json.loads((report_dir / "report.json").read_text())
    rows = {row["name"]: row for row in report["trees"]}
    assert set(rows) == {"casia-b-paper [1, 2, 4]", "uniform-64 [1, 2, 4]"}
    paper, uniform = rows["casia-b-paper [1, 2, 4]"], rows["uniform-64 [1, 2, 4]"]
    assert uniform["delta_vs_reference"] is None  # the uniform tree is the default reference
    assert paper["n"] == 2 and paper["seeds"] == [0, 1]
    assert paper["train_hours"] > 0 and "train h" in out  # both seeds' training time, from their logs
    assert paper["delta_vs_reference"] == pytest.approx(paper["rank1_mean"] - uniform["rank1_mean"])
    low, high = paper["delta_ci95"]
    assert low <= paper["delta_vs_reference"] <= high and 0.0 <= paper["p_value"] <= 1.0
    assert (report_dir / "trees-validation.png").stat().st_size > 0
    assert "trees_test" not in report  # nothing was read from the test subjects yet

    compare = ["compare", "--tracking-uri", config.tracking.uri, "--experiment", config.experiment_name, "--by", "tree"]
    capsys.readouterr()
    assert main(compare) == 0
    out = capsys.readouterr().out
    assert "casia-b-paper [1, 2, 4]" in out and "uniform-64 [1, 2, 4]" in out and "reference" in out
    assert report["verdict"] in out.replace("\n", " ") or "verdict: " in out
    assert main([*compare, "--split", "test"]) == 2  # nothing scored on test yet

    assert main(["study", "test", str(path), "--all"]) == 0
    assert main(["study", "report", str(path), "--reference", "casia-b-paper", "--margin", "0.5"]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    assert {row["name"] for row in report["trees_test"]} == set(rows)
    assert "verdict_test" in report
    # The margin's reading, per split, of the one tree paired with the paper's, printed and kept.
    out = capsys.readouterr().out
    for key in ("margin", "margin_test"):
        (line,) = report[key]
        assert line.startswith("uniform-64 [1, 2, 4] ") and "casia-b-paper" in line
        assert f"margin 0.5: {line}" in out
    assert main([*compare, "--split", "test"]) == 0

    # More seeds for every configuration (a comparison, not a selection): fresh seed 2 trains beside
    # seeds 0 and 1 of both trees, two processes sharing the seeds, and the per-tree tables and the
    # test step count it.
    assert main(["study", "replicate", str(path), "--all", "--seeds", "1", "--workers", "2"]) == 0
    for trial in study.trials:
        assert (Path(trial.user_attrs["output_dir"]) / "confirm" / "seed-2" / "evaluation" / "subject_scores.npz").is_file()
    assert main(["study", "test", str(path), "--all"]) == 0
    assert main(["study", "report", str(path)]) == 0
    report = json.loads((report_dir / "report.json").read_text())
    for key in ("trees", "trees_test"):
        assert {row["name"]: (row["n"], row["seeds"]) for row in report[key]} == {
            name: (3, [0, 1, 2]) for name in rows}
    capsys.readouterr()
    assert main([*compare, "--split", "test"]) == 0
    table = capsys.readouterr().out
    assert "casia-b-paper [1, 2, 4]" in table

    # The project moved (to another disk, another machine) with its MLflow store inside: the runs' folder
    # tags name the old place, and the comparison finds the trial folders beside the store instead.
    import shutil

    moved = config.project_dir.with_name("moved-home")
    shutil.copy2(config.tracking.uri.removeprefix("sqlite:///"), config.project_dir / "mlflow.db")
    config.project_dir.rename(moved)
    moved_compare = ["compare", "--tracking-uri", f"sqlite:///{moved / 'mlflow.db'}",
                     "--experiment", config.experiment_name, "--by", "tree", "--split", "test"]
    assert main(moved_compare) == 0
    assert capsys.readouterr().out == table


def test_an_exported_record_reports_tests_and_adds_seeds_without_the_project_or_its_weights(
        write_study, monkeypatch, tmp_path, capsys) -> None:
    import json
    import shutil

    from workbench.cli import main

    path = write_study(name="kept", trials=2, iterations=2)
    path.write_text(path.read_text().replace("eval_every = 2", "eval_every = 2\nseeds = 2")
                    .replace("fta = [true, false]", "fta = [true]").replace('name = "random"', 'name = "grid"'))
    assert run_study(path).complete == 2
    assert main(["study", "replicate", str(path), "--all", "--seeds", "1"]) == 0
    assert main(["study", "test", str(path), "--all"]) == 0
    home = load_study_config(path).project_dir
    assert main(["study", "report", str(path)]) == 0
    before = json.loads((home / "reports" / "kept" / "report.json").read_text())
    assert list(home.rglob("*.pt"))  # the trials saved checkpoints ...

    record = tmp_path / "records"
    capsys.readouterr()
    assert main(["study", "export", str(path), str(record)]) == 0
    assert "checkpoint(s) and the data left out" in capsys.readouterr().out
    assert not list(record.rglob("*.pt"))  # ... which the record leaves out
    assert (record / "kept.journal").is_file() and (record / "splits" / "kept.json").is_file()
    texts = [p.read_text() for p in record.rglob("*") if p.suffix in (".journal", ".json", ".jsonl", ".toml")]
    assert texts and not any(str(home) in t for t in texts) and any("<project>/trials/kept" in t for t in texts)
    assert main(["study", "export", str(path), str(record)]) == 2  # never over a record of the same study
    assert "already holds a record of study 'kept'" in capsys.readouterr().err

    lean = tmp_path / "lean"
    assert main(["study", "export", str(path), str(lean), "--no-figures"]) == 0
    assert list(record.rglob("*.png")) and not list(lean.rglob("*.png")) and not list(lean.rglob("*.svg"))
    assert len(list(lean.rglob("subject_scores.npz"))) == len(list(record.rglob("subject_scores.npz"))) == 6 * 2

    capsys.readouterr()
    assert main(["study", "curve", str(path)]) == 0
    curve = capsys.readouterr().out.split("\nfigure: ")[0]
    assert "validation rank1 along training" in curve and "(trial 0)" in curve
    shutil.rmtree(home)  # the record stands alone

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a seed evaluated before the export was trained again")

    monkeypatch.setattr(replicates, "Trainer", no_training)
    assert main(["study", "report", str(path), "--project-dir", str(record)]) == 0
    after = json.loads((record / "reports" / "kept" / "report.json").read_text())
    for key in ("trees", "trees_test"):
        assert [(r["name"], r["seeds"], r["rank1_mean"], r["delta_ci95"]) for r in after[key]] == \
               [(r["name"], r["seeds"], r["rank1_mean"], r["delta_ci95"]) for r in before[key]]
    assert main(["study", "test", str(path), "--all", "--project-dir", str(record)]) == 0  # read back, not re-run

    # The learning curves come back from the seeds' training logs, which the record keeps, with no
    # MLflow store to read (and none created).
    def no_mlflow(*args: object, **kwargs: object) -> None:
        raise AssertionError("study curve asked MLflow")

    monkeypatch.setattr("workbench.tracking._store.make_client", no_mlflow)
    capsys.readouterr()
    assert main(["study", "curve", str(path), "--project-dir", str(record)]) == 0
    assert capsys.readouterr().out.split("\nfigure: ")[0] == curve
    assert not list(record.rglob("mlflow.db"))
    assert main(["study", "replicate", str(path), "--all", "--seeds", "1", "--project-dir", str(record)]) == 0

    # Adding a seed to the record trains it there. The split file names the dataset's partition under the
    # project it was exported from (a rendered set lives inside it); the split is the same, so it is used.
    monkeypatch.undo()
    split_file = record / "splits" / "kept.json"
    split = json.loads(split_file.read_text())
    split["VALIDATION_SPLIT"]["source"] = "<project>/data/rendered/partition.json"
    split_file.write_text(json.dumps(split, indent=1) + "\n")
    assert main(["study", "replicate", str(path), "--all", "--seeds", "2", "--project-dir", str(record)]) == 0
    assert len(list(record.rglob("*.pt"))) >= 2, "one fresh seed per configuration trained in the record"
    assert json.loads(split_file.read_text()) == split, "the record's split file is left as it was"
