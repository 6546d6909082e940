"""Studies end to end on a tiny synthetic set: trials train, evaluate, prune, log and resume."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from workbench.cli import main
from workbench.search import load_study_config, open_storage, run_study
from workbench.tracking import load_trials

pytestmark = pytest.mark.slow


def _study(path: Path) -> optuna.Study:
    config = load_study_config(path)
    return optuna.load_study(study_name=config.study.name,
                             storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))


def test_study_runs_logs_every_trial_and_continues_its_budget(write_study, capsys) -> None:
    path = write_study(trials=2)
    first = run_study(path)
    assert (first.complete + first.pruned, first.failed) == (2, 0)
    # The same study name continues where it stopped when the budget grows.
    second = run_study(path, n_trials=3)
    assert second.complete + second.pruned == 3 and second.failed == 0
    study = _study(path)
    trained = [t for t in study.trials if "duplicate_of" not in t.user_attrs]  # repeats are skipped untrained
    assert len(trained) == 3  # nothing was run twice
    assert len({tuple(sorted(t.params.items())) for t in trained}) == 3

    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert len(runs) == 3
    row = runs.iloc[0]
    split_cols = [c for c in runs.columns if "split" in c]
    assert split_cols, f"no split-list params logged: {list(runs.columns)}"
    metric_cols = set(runs.columns)
    for name in ("rank1_mean", "gflops", "params"):
        assert any(c.endswith(name) for c in metric_cols), f"{name} missing from {sorted(metric_cols)}"
    assert str(row.get("tree_id", row.get("params.tree_id", ""))) != ""

    assert main(["study", "report", str(path)]) == 0
    out = capsys.readouterr().out
    assert "best trial" in out and "cuts [1, 2, 4]" in out
    assert (config.project_dir / "reports" / config.study.name / "history.png").stat().st_size > 0


def test_multi_objective_study_reports_a_pareto_front(write_study) -> None:
    objectives = ('[[objectives]]\nmetric = "rank1"\ndirection = "maximize"\n'
                  '[[objectives]]\nmetric = "gflops"\ndirection = "minimize"\n')
    path = write_study(name="pareto", trials=3, objectives=objectives, iterations=2)
    summary = run_study(path)
    assert summary.complete == 3
    assert summary.best, "a multi-objective study has a non-empty Pareto front"
    for row in summary.best:
        assert len(row["values"]) == 2
    config = load_study_config(path)
    assert (config.project_dir / "reports" / "pareto" / "pareto.png").exists()


def test_trials_evaluate_and_time_in_the_precision_they_train_in(write_study, monkeypatch) -> None:
    import workbench.cost
    import workbench.evaluation._embed as embed

    timed: list[tuple[str, str]] = []
    evaluated: list[str] = []
    real_cost, real_autocast = workbench.cost.estimate_cost, embed.autocast

    def cost(*args, **kwargs):  # type: ignore[no-untyped-def]
        timed.append((kwargs["device"], kwargs["amp"]))
        return real_cost(*args, **kwargs)

    def autocast(device, amp):  # type: ignore[no-untyped-def]
        evaluated.append(amp)
        return real_autocast(device, amp)

    monkeypatch.setattr(workbench.cost, "estimate_cost", cost)
    monkeypatch.setattr(embed, "autocast", autocast)
    objectives = ('[[objectives]]\nmetric = "rank1"\ndirection = "maximize"\n'
                  '[[objectives]]\nmetric = "latency_ms"\ndirection = "minimize"\n')
    path = write_study(name="bf16", trials=1, objectives=objectives, iterations=2)
    path.write_text(path.read_text().replace("[train]\n", '[train]\namp = "bf16"\ndevice = "cpu"\n'))
    summary = run_study(path)
    assert summary.complete == 1
    assert timed == [("cpu", "bf16")] and evaluated and set(evaluated) == {"bf16"}
    assert _study(path).trials[0].user_attrs["latency_ms"] > 0


def test_infeasible_space_is_refused_before_any_trial(write_study) -> None:
    path = write_study(name="bad", presets='["oumvlp-paper"]')
    with pytest.raises(ValueError, match="no cut with"):
        run_study(path)


def test_unknown_study_key_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text('[hierarchies]\npresets = ["uniform-64"]\n[budget]\ntrails = 3\n')
    assert main(["study", "run", str(path)]) == 2


def test_the_evaluation_at_the_end_of_training_is_never_pruned(write_study) -> None:
    # The same always-pruning threshold, but the only evaluation is the last one: the training is spent,
    # so the trial completes with its value instead of being thrown away as pruned.
    path = write_study(name="prune-end", trials=2, iterations=2,
                       extra='[pruner]\nname = "threshold"\nlower = 101.0\n')
    summary = run_study(path)
    assert (summary.complete, summary.pruned, summary.failed) == (2, 0, 0)
    for t in _study(path).trials:
        assert t.state == TrialState.COMPLETE and list(t.intermediate_values) == [2]


def test_pruned_trials_are_recorded_as_pruned_in_optuna_and_mlflow(write_study) -> None:
    # rank-1 is a percentage, so a lower bound of 101 prunes every trial at its first evaluation.
    path = write_study(name="prune", trials=2, iterations=4,
                       extra='[pruner]\nname = "threshold"\nlower = 101.0\n')
    summary = run_study(path)
    assert (summary.complete, summary.pruned, summary.failed) == (0, 2, 0)
    study = _study(path)
    for t in study.trials:
        assert t.state == TrialState.PRUNED
        assert list(t.intermediate_values) == [2], "pruned at the first evaluation, not trained to the end"
    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    state_col = next(c for c in runs.columns if c.endswith("state"))
    assert sorted(runs[state_col]) == ["pruned", "pruned"]
    assert set(runs["params.tree"]) <= {"casia-b-paper", "uniform-64"}, "pruned runs still show their tree"
    import mlflow

    client = mlflow.MlflowClient(config.tracking.uri)  # read only: a StudyTracker would reopen the study's run
    experiment = client.get_experiment_by_name(config.experiment_name)
    runs_by_role: dict[str, list] = {}
    for run in client.search_runs([experiment.experiment_id]):
        runs_by_role.setdefault(run.data.tags["workbench.role"], []).append(run)
    for run in runs_by_role["trial"]:
        assert run.info.run_name.endswith("(pruned)")
        files = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "hierarchy")}
        tree = run.data.params["tree"]
        assert {f"{tree}.json", f"{tree}-dendrogram.png", f"{tree}-dendrogram.svg"} <= files, files
    (parent,) = runs_by_role["study"]
    assert parent.info.status == "FINISHED", "the study's run ends with the study"
    assert parent.data.params["budget.trials"] == "2" and parent.data.params["study_file"] == path.name
    assert {a.path for a in client.list_artifacts(parent.info.run_id)} >= {"report", "study"}
    assert study.metric_names == ["rank1"]
    for t in study.trials:
        assert "channels" not in t.params, "a single-valued choice is fixed, not searched"
        assert t.user_attrs["mlflow_run_id"] and t.user_attrs["gflops"] > 0 and t.user_attrs["cuts"] == [1, 2, 4]


def test_gaitgs_trials_train_with_parts_cut_from_the_tree(write_study) -> None:
    path = write_study(name="gaitgs", trials=1, iterations=2, models='["gaitgs-small"]',
                       extra='[models.gaitgs-small.loss]\ntriplet_margin = 0.25\nce_weight = 0.0\n')
    summary = run_study(path)
    assert (summary.complete, summary.failed) == (1, 0)
    config = load_study_config(path)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    row = runs.iloc[0]
    assert row["params.model"] == "gaitgs-small"
    splits = {str(row[c]) for c in runs.columns if c.startswith("params.") and c.endswith(".split")}
    # casia-b-paper's or uniform-64's 4-region cut, rescaled to GaitGS's 32-row feature maps
    assert splits & {"[4, 16, 8, 4]", "[8, 8, 8, 8]"}, splits


def test_a_model_named_only_in_train_model_logs_its_own_cuts(write_study) -> None:
    # The study names GaitGS only in [train.model]: its trials must log GaitGS's levels (strips, parts),
    # not HSTL's (whole body first), and train a GaitGS cut from the tree.
    path = write_study(name="gaitgs-train-model", trials=1, iterations=2,
                       extra='[train.model]\nname = "gaitgs-small"\n[train.loss]\ntriplet_margin = 0.25\n'
                             'ce_weight = 0.0\n')
    summary = run_study(path)
    assert (summary.complete, summary.failed) == (1, 0)
    (trial,) = _study(path).trials
    assert trial.user_attrs["cuts"] == [2, 4]
    config = load_study_config(path)
    row = load_trials(config.tracking.uri, config.experiment_name).iloc[0]
    assert row["params.model"] == "gaitgs-small"
    assert row["params.cuts"] == "[2, 4]"
    # GaitGS's three split lists (block strips at two heights, parts); its 4 parts on 32-row feature maps
    assert row["params.stage3.split"] in {"[4, 16, 8, 4]", "[8, 8, 8, 8]"}
