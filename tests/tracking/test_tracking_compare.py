"""Trials read back from a store, the comparison table, and ``workbench compare`` end to end."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workbench.cli import main
from workbench.tracking import comparison_table, load_trials, run_label

TRIALS: list[dict[str, Any]] = [
    {"params": {"tree_id": "aaaa1111bbbb", "tree_name": "casia-b-paper", "cuts": [1, 2, 4],
                "stage1.split": [64], "stage2.split": [40, 24], "stage3.split": [8, 32, 16, 8]},
     "metrics": {"rank1": 0.91, "gflops": 51.6, "gflops.arme3": 37.4, "params_m": 4.7, "train/loss": 0.3}},
    {"params": {"tree_id": "cccc2222dddd", "tree_name": "uniform-64", "cuts": [1, 2, 4],
                "stage1.split": [64], "stage2.split": [32, 32], "stage3.split": [16, 16, 16, 16]},
     "metrics": {"rank1": 0.85, "gflops": 30.0, "params_m": 4.1}},
    {"params": {"tree_id": "eeee3333ffff", "tree_name": "discovered", "cuts": [1, 3, 5],
                "stage1.split": [64], "stage2.split": [12, 28, 24], "stage3.split": [4, 8, 28, 16, 8]},
     "metrics": {"rank1": 0.80, "gflops": 60.0, "params_m": 5.0}},
    {"params": {"tree_id": "eeee3333ffff", "tree_name": "discovered", "cuts": [1, 2, 2]},
     "metrics": {"rank1": 0.99, "gflops": 5.0}, "state": "pruned"},
    {"params": {"tree_id": "cccc2222dddd", "tree_name": "uniform-64", "cuts": [1, 4, 8]},
     "state": "failed", "error": "out of memory"},
]


@pytest.fixture
def store(tracking_uri: str, log_fake_study: Callable[..., Any]) -> str:
    log_fake_study(tracking_uri, "hstl", "trees", TRIALS)
    return tracking_uri


def test_load_trials_reads_params_metrics_tags_and_states(store: str) -> None:
    df = load_trials(store, "hstl")
    assert list(df["trial"]) == [0, 1, 2, 3, 4]
    assert list(df["state"]) == ["complete", "complete", "complete", "pruned", "failed"]
    assert list(df["status"]) == ["FINISHED"] * 4 + ["FAILED"]
    assert df.loc[0, "params.stage3.split"] == "[8, 32, 16, 8]"
    assert df.loc[1, "metrics.gflops"] == 30.0
    assert df.loc[4, "tags.workbench.error"] == "out of memory"
    assert df["parent_run_id"].nunique() == 1 and (df["study"] == "trees").all()
    assert (df["duration_s"] >= 0).all()


def test_filters_and_paging(store: str, log_fake_study: Callable[..., Any]) -> None:
    assert list(load_trials(store, "hstl", "params.tree_id = 'cccc2222dddd'")["trial"]) == [1, 4]
    assert list(load_trials(store, "hstl", "metrics.rank1 > 0.82")["trial"]) == [0, 1, 3]
    assert load_trials(store, "hstl", study="other").empty
    log_fake_study(store, "hstl", "other", [{"metrics": {"rank1": 0.1}}])
    assert len(load_trials(store, "hstl")) == 6
    assert list(load_trials(store, "hstl", study="other")["trial"]) == [0]


def test_bad_experiment_and_filter_are_explained(store: str) -> None:
    from workbench.tracking import TrackingError

    with pytest.raises(TrackingError, match=r"no experiment 'nope'.*hstl"):
        load_trials(store, "nope")
    with pytest.raises(TrackingError, match=r"rejected the filter.*single quotes"):
        load_trials(store, "hstl", "params.tree_id == ")


def test_comparison_table_sorts_and_shows_splits_and_costs(store: str) -> None:
    df = load_trials(store, "hstl")
    table = comparison_table(df, "gflops", ascending=True)
    assert list(table.columns) == ["trial", "state", "tree", "cuts", "stage1.split", "stage2.split",
                                   "stage3.split", "gflops", "params_m", "rank1", "run_id"]
    assert list(table["trial"]) == [3, 1, 0, 2, 4]  # no gflops (failed) sorts last
    assert df.loc[0, "metrics.gflops.arme3"] == 37.4  # loaded, but a breakdown stays out of the table
    assert table.loc[1, "stage2.split"] == "[32, 32]"
    assert run_label(df.iloc[2]) == "#2 discovered [1, 3, 5]"
    assert run_label({"params.tree_id": "0123456789ab"}) == "01234567"
    assert run_label({"trial": 5}) == "#5 ?"
    by_name = comparison_table(df, "tree_name")
    assert list(by_name["tree"])[:2] == ["uniform-64", "uniform-64"]


def test_compare_command_end_to_end(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "report"
    code = main(["compare", "--tracking-uri", store, "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["trial", "state", "pareto"])
    rows = [line.split() for line in lines[header + 1 : header + 6]]
    assert [r[0] for r in rows] == ["3", "0", "1", "2", "4"]  # by rank1, best first; failed last
    assert rows[1][1:3] == ["complete", "True"] and rows[0][1:3] == ["pruned", "False"]
    assert "[8, 32, 16, 8]" in lines[header + 2]
    assert f"table: {out / 'trials.csv'}" in printed and f"pareto figure: {out / 'pareto.png'}" in printed
    with (out / "trials.csv").open() as fh:
        table = list(csv.DictReader(fh))
    front = {r["trial"] for r in table if r["pareto"] == "True"}
    assert front == {"0", "1"}  # trial 2 is dominated; pruned 3 is not eligible by default
    assert (out / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_compare_command_options_and_errors(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", "--tracking-uri", store, "--experiment", "hstl", "--filter",
                 "params.tree_name = 'discovered'", "--objectives", "rank1:max", "gflops:min",
                 "--sort", "gflops", "--all-states", "--out", str(tmp_path / "a")])
    assert code == 0
    with (tmp_path / "a" / "trials.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [r["trial"] for r in table] == ["3", "2"]  # gflops ascending (a min objective)
    assert [r["pareto"] for r in table] == ["True", "False"]
    capsys.readouterr()

    assert main(["compare", "--tracking-uri", store, "--objectives", "rank1", "--out", str(tmp_path)]) == 2
    assert "NAME:max or NAME:min" in capsys.readouterr().err
    assert main(["compare", "--tracking-uri", store, "--objectives", "mAP:max", "--out", str(tmp_path)]) == 2
    assert "no column or metric named 'mAP'" in capsys.readouterr().err
    assert main(["compare", "--tracking-uri", store, "--filter", "params.tree_id = 'zzz'",
                 "--out", str(tmp_path)]) == 2
    assert "no trial runs matching" in capsys.readouterr().err
    assert main(["compare", "--tracking-uri", "http://127.0.0.1:9", "--out", str(tmp_path)]) == 2
    assert "mlflow server" in capsys.readouterr().err


def test_compare_needs_an_experiment_name_when_several_exist(
    store: str, log_fake_study: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_fake_study(store, "second", "s", [{"metrics": {"rank1": 0.5, "gflops": 1.0}}])
    assert main(["compare", "--tracking-uri", store, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--experiment NAME" in err and "hstl, second" in err


def test_a_pruned_trials_validation_figure_is_never_ranked_among_final_ones(tracking_uri, log_fake_study) -> None:
    log_fake_study(tracking_uri, "val-figures", "s", [
        {"metrics": {"val/rank1": 0.70}},
        {"metrics": {"val/rank1": 0.99}, "state": "pruned"},
        {"metrics": {"val/rank1": 0.80}},
    ])
    table = comparison_table(load_trials(tracking_uri, "val-figures"), "rank1")
    assert list(table["trial"]) == [2, 0, 1]
    assert list(table["state"]) == ["complete", "complete", "pruned"]


def test_compare_reads_only_stores_that_exist_and_finds_the_projects_one(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    here = tmp_path / "elsewhere"
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["compare", "--out", "c"]) == 2
    assert "no MLflow store here" in capsys.readouterr().err
    assert main(["compare", "--tracking-uri", f"sqlite:///{here / 'missing.db'}", "--out", "c"]) == 2
    assert "missing.db does not exist" in capsys.readouterr().err
    assert list(here.iterdir()) == []  # nothing created by a read-only command
    (here / "workbench-home").mkdir()
    (here / "workbench-home" / "mlflow.db").write_bytes(Path(store[len("sqlite:///"):]).read_bytes())
    assert main(["compare", "--experiment", "hstl", "--out", "c"]) == 0


@pytest.mark.parametrize("name, content", [("notes.txt", b"my notes\n"), ("figure.png", b"\x89PNG\r\n\x1a\n\x00\x00")])
def test_compare_names_a_file_that_is_no_mlflow_store_in_one_line(
    name: str, content: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert main(["compare", "--tracking-uri", f"sqlite:///{path}", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("workbench: error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert f"{path} is not a SQLite database" in err and "mlflow.db" in err
    assert path.read_bytes() == content and sorted(tmp_path.iterdir()) == [path]


def test_the_table_shows_the_step_of_each_figure_and_the_choices_that_vary(tracking_uri, log_fake_study) -> None:
    log_fake_study(tracking_uri, "choices", "s", [
        {"params": {"lr": 0.001, "fta": True, "frames": 30}, "metrics": {"val/rank1": 0.80},
         "tags": {"workbench.step": 600}},
        {"params": {"lr": 0.003, "fta": False, "frames": 30}, "metrics": {"val/rank1": 0.60},
         "tags": {"workbench.step": 200}, "state": "pruned"},
    ])
    table = comparison_table(load_trials(tracking_uri, "choices"), "rank1")
    assert list(table["step"]) == [600, 200], "a pruned trial's figure says it comes from step 200"
    assert list(table["lr"]) == ["0.001", "0.003"] and list(table["fta"]) == ["True", "False"]
    assert "frames" not in table.columns, "a choice every trial shares is not a column"
