"""A study file's mistakes stop it before any work, and failing trials stop it instead of repeating forever."""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pytest

from workbench.cli import main
from workbench.hierarchy import load_tree
from workbench.search import _replicates as replicates
from workbench.search import load_study_config, open_storage, run_study
from workbench.search._checks import check_widths
from workbench.search._space import Candidate, suggest, trial_choices


def _edit(path: Path, old: str, new: str) -> Path:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))
    return path


def test_misspelt_names_are_all_reported_before_anything_is_rendered(write_study, tmp_path: Path, capsys) -> None:
    path = write_study(name="typos", models='["hstl-smal"]')
    _edit(path, "[data]\n", '[data]\nprotocol = "casia_b"\n')
    _edit(path, "[hierarchies]\n", '[hierarchies.discover]\ndescriptors = ["row-artic"]\nlinkages = ["wards"]\n'
                                    "[hierarchies]\n")
    capsys.readouterr()
    assert main(["study", "run", str(path)]) != 0
    err = capsys.readouterr().err
    for field, bad, valid in (("data.protocol", "casia_b", "casia-b"), ("space.models", "hstl-smal", "hstl-small"),
                              ("descriptors", "row-artic", "row-articulation"), ("linkages", "wards", "ward")):
        assert field in err and repr(bad) in err and valid in err, (field, err)
    home = tmp_path / "home"
    assert not (home / "data").exists() and not (home / "splits").exists() and not (home / "trials").exists()


def test_a_descriptor_of_model_activations_is_refused_in_a_study_with_the_route_that_works(write_study, tmp_path: Path,
                                                                                         capsys) -> None:
    path = write_study(name="activations")
    _edit(path, "[hierarchies]\n", '[hierarchies.discover]\ndescriptors = ["row-articulation", "activation-stats"]\n'
                                    'linkages = ["ward"]\n[hierarchies]\n')
    capsys.readouterr()
    assert main(["study", "run", str(path)]) != 0
    err = capsys.readouterr().err
    assert "hierarchies.discover.descriptors: 'activation-stats' reads a trained model's feature maps" in err
    assert "--checkpoint CKPT" in err and "hierarchies.files" in err and "row-articulation" not in err
    assert not (tmp_path / "home" / "data").exists(), "refused before any data was rendered"


def test_an_objective_no_evaluation_produces_is_refused_before_any_trial(write_study, capsys) -> None:
    path = write_study(name="metric", objectives='[[objectives]]\nmetric = "rank_1"\ndirection = "maximize"\n')
    capsys.readouterr()
    assert main(["study", "run", str(path)]) != 0
    err = capsys.readouterr().err
    assert "'rank_1' is not produced" in err and "rank1_nm" in err and "gflops" in err
    config = load_study_config(path)
    assert not (config.project_dir / "trials").exists()


class _Failing:
    """Stands in for the trainer: every trial fails, with the messages it is given in turn."""

    messages: itertools.cycle[str]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError(next(self.messages))


def _failed_trials(path: Path) -> int:
    config = load_study_config(path)
    study = optuna.load_study(study_name=config.study.name,
                              storage=open_storage(f"sqlite:///{config.project_dir / 'optuna.db'}"))
    return sum(t.state == optuna.trial.TrialState.FAIL for t in study.trials)


@pytest.mark.slow
def test_the_same_error_twice_stops_the_study_with_a_summary(write_study, monkeypatch, capsys) -> None:
    monkeypatch.setattr(_Failing, "messages", itertools.cycle(["CUDA out of memory"]), raising=False)
    monkeypatch.setattr(replicates, "Trainer", _Failing)
    path = write_study(name="same-error", trials=6)
    summary = run_study(path)
    assert summary.failed == 2 and "failed with the same error: RuntimeError: CUDA out of memory" in summary.stopped
    assert _failed_trials(path) == 2


@pytest.mark.slow
def test_different_failures_stop_at_max_failed_and_the_cli_exits_non_zero(write_study, monkeypatch, capsys) -> None:
    monkeypatch.setattr(_Failing, "messages", (f"error {i}" for i in itertools.count()), raising=False)
    monkeypatch.setattr(replicates, "Trainer", _Failing)
    path = write_study(name="cap", trials=8, extra="")
    _edit(path, "eval_every = 2\n", "eval_every = 2\nmax_failed = 3\n")
    capsys.readouterr()
    assert main(["study", "run", str(path)]) == 1
    assert "3 trials failed (budget.max_failed = 3)" in capsys.readouterr().err
    assert _failed_trials(path) == 3
    # Fixed and run again: the earlier failures are not held against it.
    monkeypatch.undo()
    assert main(["study", "run", str(path), "--n-trials", "1"]) == 0


def test_reading_a_study_that_never_ran_creates_nothing(write_study, tmp_path: Path, capsys) -> None:
    path = write_study(name="never-ran")
    for command in (["study", "report", str(path)], ["study", "test", str(path)],
                    ["study", "replicate", str(path)]):
        assert main(command) == 2
        assert "no study store at" in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_widths_a_family_cannot_take_are_refused_before_anything_is_rendered(write_study, tmp_path: Path,
                                                                            capsys) -> None:
    path = write_study(name="mixed", models='["hstl-small", "gaitbase-small"]')
    capsys.readouterr()
    assert main(["study", "run", str(path)]) != 0
    err = capsys.readouterr().err
    assert "space.channels: [4, 4, 8] do not fit model 'gaitbase-small'" in err, err
    assert "[models.gaitbase-small.model] channels" in err and "hstl-small'" not in err, err
    assert not (tmp_path / "home" / "data").exists()


def test_a_family_with_its_own_widths_takes_them_and_the_others_take_the_space(write_study) -> None:
    path = write_study(name="mixed-own", models='["hstl-small", "gaitbase-small"]',
                       extra='[models.gaitbase-small.model]\nchannels = [4, 4, 8, 8]\n')
    config = load_study_config(path)
    assert config.model_channels() == {"gaitbase-small": (4, 4, 8, 8)}
    assert check_widths(config) == []
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    candidates = [Candidate(name="uniform-64", source="uniform-64", tree=load_tree("uniform-64"))]
    seen = {}
    for _ in range(12):
        trial = study.ask()
        choice = suggest(trial, config.space, candidates, config.model_channels())
        seen[choice.model] = (choice.channels, trial_choices(trial)["channels"], "channels" in trial.params)
        study.tell(trial, 0.0)
    assert seen["gaitbase-small"] == ((4, 4, 8, 8), "4-4-8-8", False)
    assert seen["hstl-small"] == ((4, 4, 8), "4-4-8", False)  # one width list in the space: fixed, not searched
