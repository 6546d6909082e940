"""Studies select on validation subjects held out of training and read the test subjects only in `study test`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.data import read_partition
from workbench.search import load_study_config, run_study
from workbench.tracking import load_trials

pytestmark = pytest.mark.slow


def _copy_with_study(write_study, tiny_data: Path, tmp_path: Path, name: str, extra: str = "") -> tuple[Path, Path]:
    """A private copy of the tiny set (so it can be damaged) and a study file over it."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    path = write_study(name=name, trials=2, iterations=4, extra=extra)
    path.write_text(path.read_text().replace(f'source = "{tiny_data}"', f'source = "{data}"'))
    return path, data


def _damage_test_subjects(data: Path) -> list[Path]:
    test_ids = read_partition(data / "partition.json").test
    damaged = sorted(p for i in test_ids for p in (data / i).rglob("*.pkl"))
    for p in damaged:
        p.write_bytes(b"not a pickle")
    return damaged


def test_trials_never_read_test_subjects_and_the_test_step_names_unreadable_files(
    write_study, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    extra = '[hierarchies.discover]\ndescriptors = ["row-stats"]\nlinkages = ["ward"]\n'
    path, data = _copy_with_study(write_study, tiny_data, tmp_path, "heldout", extra)
    damaged = _damage_test_subjects(data)
    summary = run_study(path)
    assert (summary.complete + summary.pruned, summary.failed) == (2, 0)

    config = load_study_config(path)
    split = json.loads((config.project_dir / "splits" / "heldout.json").read_text())
    train, validation = set(split["TRAIN_SET"]), set(split["TEST_SET"])
    dataset = read_partition(data / "partition.json")
    assert train.isdisjoint(validation) and train | validation == set(dataset.train)
    assert validation.isdisjoint(dataset.test)

    # Trials learned the training subjects only; discovery saw them only.
    checkpoint = sorted((config.project_dir / "trials" / "heldout").rglob("checkpoint-*.pt"))[-1]
    assert torch.load(checkpoint, weights_only=True)["num_classes"] == len(train)
    tree = json.loads(next((config.project_dir / "hierarchies").glob("heldout-*.json")).read_text())
    assert tree["provenance"]["n_subjects"] == len(train)

    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert "metrics.val/rank1" in runs.columns and "metrics.rank1" not in runs.columns

    capsys.readouterr()
    assert main(["study", "test", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{len(damaged)} test file(s)" in err
    assert str(damaged[0]) in err


def test_the_test_step_shows_validation_and_test_side_by_side_and_logs_test_metrics(
    write_study, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    path, _ = _copy_with_study(write_study, tiny_data, tmp_path, "sidebyside")
    run_study(path)
    config = load_study_config(path)
    capsys.readouterr()
    assert main(["study", "test", str(path), "--all"]) == 0
    out = capsys.readouterr().out
    assert "validation rank1" in out and "test rank1" in out
    report = json.loads((config.project_dir / "reports" / "sidebyside" / "test.json").read_text())
    complete = [t for t in report["trials"]]
    assert complete and all("rank1" in t["test"] and "rank1" in t["validation"] for t in complete)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    tested = runs[runs["metrics.test/rank1"].notna()]
    assert len(tested) == len(complete)
    first = complete[0]
    assert tested.set_index("trial").loc[first["number"], "metrics.test/rank1"] == pytest.approx(first["test"]["rank1"])
    # Evaluated once: a second call reads the saved figures.
    summary_file = Path(first["folder"]) / "test" / "subject_scores.npz"
    before = summary_file.stat().st_mtime_ns
    assert main(["study", "test", str(path), "--trials", str(first["number"])]) == 0
    assert summary_file.stat().st_mtime_ns == before


def test_the_test_step_in_worker_processes_gives_the_figures_of_one_process(
    write_study, tiny_data: Path, tmp_path: Path, capsys, caplog
) -> None:
    path, _ = _copy_with_study(write_study, tiny_data, tmp_path, "testworkers")
    run_study(path)
    config = load_study_config(path)
    report_file = config.project_dir / "reports" / "testworkers" / "test.json"
    assert main(["study", "test", str(path), "--all", "--workers", "0"]) == 2
    assert "--workers 0: give 1 or more" in capsys.readouterr().err
    assert not report_file.exists()  # refused before anything was evaluated

    with caplog.at_level("INFO", logger="workbench.search._heldout"):
        assert main(["study", "test", str(path), "--all", "--workers", "2"]) == 0
    assert "in 2 worker processes" in caplog.text
    in_workers = json.loads(report_file.read_text())
    assert len(in_workers["trials"]) == 2
    # The same models evaluated again in this one process (their saved results moved aside) give the same figures.
    for trial in in_workers["trials"]:
        saved = Path(trial["folder"]) / "test"
        assert (saved / "subject_scores.npz").is_file()
        saved.rename(saved.with_name("test-in-workers"))
    caplog.clear()
    with caplog.at_level("INFO", logger="workbench.search._heldout"):
        assert main(["study", "test", str(path), "--all"]) == 0
    assert "worker processes" not in caplog.text
    assert json.loads(report_file.read_text())["trials"] == in_workers["trials"]


def test_a_changed_validation_request_is_refused_instead_of_mixing_splits(
    write_study, tiny_data: Path, tmp_path: Path, capsys
) -> None:
    path, _ = _copy_with_study(write_study, tiny_data, tmp_path, "changed")
    run_study(path, n_trials=1)
    split_file = load_study_config(path).project_dir / "splits" / "changed.json"
    first = split_file.read_text()
    others = json.loads(first)["TRAIN_SET"]  # valid training ids, but not the validation subjects used so far
    path.write_text(path.read_text().replace("eval_batch_size = 32",
                                             f"eval_batch_size = 32\nvalidation = {json.dumps(others)}"))
    capsys.readouterr()
    assert main(["study", "run", str(path)]) != 0
    assert "different validation split" in capsys.readouterr().err
    assert split_file.read_text() == first


def test_the_test_table_shows_discovered_trees_by_their_whole_name() -> None:
    from pathlib import Path

    from workbench.search._heldout import HeldOutReport, HeldOutTrial

    name = "tree-comparison-synthetic-identity-row-identity-ward"
    figures = {"rank1": 93.1, "rank1_ci_low": 90.7, "rank1_ci_high": 95.5}
    rows = [HeldOutTrial(1, name, [1, 2, 4], figures, figures, Path()),
            HeldOutTrial(6, "uniform-64", [1, 2, 4], figures, figures, Path())]
    lines = HeldOutReport("s", "rank1", 20, rows, 9).text().splitlines()
    assert any(line.split()[:2] == ["1", name] for line in lines)
    header, first, second = lines[1], lines[2], lines[3]
    assert header.index("cuts") == first.index("[1, 2, 4]") == second.index("[1, 2, 4]")  # columns still line up
