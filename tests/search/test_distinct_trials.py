"""Processes sharing a study propose distinct configurations; one process stays reproducible."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from workbench.hierarchy import load_tree
from workbench.search import load_study_config, run_study
from workbench.search._config import StudyConfig
from workbench.search._prepare import prepare_study
from workbench.search._runner import MAX_REPEATED_PROPOSALS, check_shared_candidates
from workbench.search._sampling import DUPLICATE_OF_KEY, create_sampler, duplicate_of, trial_seed
from workbench.search._space import load_candidates, suggest, trial_choices, trial_cuts
from workbench.tracking import load_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _config(write_study, sampler: str = "tpe", lr: str = "[1e-4, 1e-2]", trials: int = 8) -> StudyConfig:
    path = write_study(name="distinct", trials=trials)
    text = path.read_text().replace('name = "random"', f'name = "{sampler}"\nstartup_trials = 3')
    path.write_text(text.replace("lr = [1e-3, 1e-3]", f"lr = {lr}"))
    return load_study_config(path)


def open_study(config: StudyConfig, storage: optuna.storages.BaseStorage) -> optuna.Study:
    """The study as a worker process opens it, with a sampler of its own."""
    names = [c.name for c in load_candidates(config)]
    return optuna.create_study(study_name=config.study.name, storage=storage, directions=config.directions,
                               sampler=create_sampler(config, names), load_if_exists=True)


def _propose(study: optuna.Study, config: StudyConfig) -> optuna.Trial:
    """Ask for a trial and draw its choices as a study worker does."""
    trial = study.ask()
    suggest(trial, config.space, load_candidates(config))
    return trial


def _score(params: dict) -> float:
    params = {"lr": 1e-3, **params}
    return float(params["lr"] * 1000 + (1.0 if params["fta"] else 0.0) + (0.5 if params["tree"] == "uniform-64" else 0))


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp"])
def test_two_processes_on_one_study_propose_different_configurations(write_study, sampler: str) -> None:
    # Two Study objects with their own samplers on one storage stand in for two processes; before
    # per-trial seeding both drew from the study seed and proposed the same sequence.
    config = _config(write_study, sampler)
    storage = optuna.storages.InMemoryStorage()
    first = open_study(config, storage)
    second = open_study(config, storage)
    for _ in range(6):
        a, b = _propose(first, config), _propose(second, config)
        assert a.params != b.params
        first.tell(a, _score(a.params))
        second.tell(b, _score(b.params))


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_one_process_with_one_seed_proposes_the_same_sequence_again(write_study, sampler: str) -> None:
    config = _config(write_study, sampler)

    def sequence() -> list[dict]:
        study = open_study(config, optuna.storages.InMemoryStorage())
        out = []
        for _ in range(8):
            trial = _propose(study, config)
            out.append(dict(trial.params))
            study.tell(trial, _score(trial.params))
        return out

    assert sequence() == sequence()


def test_trial_seeds_differ_by_number_and_by_study_seed() -> None:
    seeds = {trial_seed(0, n) for n in range(2000)}
    assert len(seeds) == 2000
    assert trial_seed(0, 5) == trial_seed(0, 5)
    assert trial_seed(0, 5) != trial_seed(1, 5)


def test_a_repeated_configuration_yields_to_the_lower_numbered_trial(write_study) -> None:
    config = _config(write_study, "random", lr="[1e-3, 1e-3]")
    study = open_study(config, optuna.storages.InMemoryStorage())
    fixed = {"tree": "uniform-64", "fta": True}  # the searched choices; cuts, channels, lr, frames are fixed
    study.enqueue_trial(fixed)
    study.enqueue_trial(fixed)
    first, second = _propose(study, config), _propose(study, config)
    assert first.params == second.params == fixed
    first.set_user_attr("seeds", [0])
    assert duplicate_of(study, first, [0]) is None, "the earlier trial never yields"
    assert duplicate_of(study, second, [0]) == first.number
    assert duplicate_of(study, second, [5, 6]) is None, "a replicate with other seeds is not a repeat"
    study.tell(first, state=TrialState.FAIL)
    assert duplicate_of(study, second, [0]) is None, "a failed trial holds nothing (its retry is queued)"
    study.enqueue_trial(fixed)  # a queued retry holds its configuration, whatever its number
    assert duplicate_of(study, second, [0]) is not None


def test_a_trial_still_drawing_its_parameters_is_waited_for(write_study) -> None:
    # Two processes drew the same configuration; the earlier one is slow to record its choices. The
    # later one must wait for them rather than miss the repeat and train it too.
    config = _config(write_study, "random", lr="[1e-3, 1e-3]")
    study = open_study(config, optuna.storages.InMemoryStorage())
    fixed = {"tree": "casia-b-paper", "fta": False}
    study.enqueue_trial(fixed)
    study.enqueue_trial(fixed)
    earlier = study.ask()  # asked, choices not drawn yet
    later = _propose(study, config)
    started = time.monotonic()
    assert duplicate_of(study, later, [0], wait_seconds=0.4, poll_seconds=0.05) is None  # gave up waiting
    assert time.monotonic() - started >= 0.4
    drawer = threading.Timer(0.3, lambda: suggest(earlier, config.space, load_candidates(config)))
    drawer.start()
    try:
        assert duplicate_of(study, later, [0], wait_seconds=20, poll_seconds=0.05) == earlier.number
    finally:
        drawer.join()


def test_study_skips_repeats_and_stops_when_the_space_is_used_up(write_study, capsys) -> None:
    # Four configurations (two trees x FTA on/off) and a random sampler: repeats are certain once
    # the space fills; a budget of five can never be met.
    path = write_study(name="exhaust", trials=5, iterations=2)
    config = load_study_config(path)
    summary = run_study(path)
    assert summary.complete == 4
    assert summary.failed == 0
    assert summary.skipped >= MAX_REPEATED_PROPOSALS
    assert "no configuration left" in summary.stopped
    study = optuna.load_study(study_name="exhaust", storage=summary.storage_url)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len({tuple(sorted(t.params.items())) for t in done}) == 4
    skipped = [t for t in study.trials if DUPLICATE_OF_KEY in t.user_attrs]
    assert all(t.state == TrialState.FAIL and "output_dir" not in t.user_attrs for t in skipped)
    runs = load_trials(config.tracking.uri, config.experiment_name)
    assert len(runs) == 4, "a skipped proposal trains nothing and logs no MLflow run"
    assert not (Path(config.project_dir) / "trials" / "exhaust" / f"trial-{skipped[0].number:04d}").exists()


def test_a_process_whose_trees_differ_from_the_recorded_ones_is_refused(write_study) -> None:
    # A second machine that discovered a different tree under the same name must not train it.
    config = _config(write_study, "random")
    prepared = prepare_study(config, progress=False)
    storage = optuna.storages.InMemoryStorage()
    check_shared_candidates(open_study(config, storage), prepared)
    check_shared_candidates(open_study(config, storage), prepared)  # the same trees: accepted
    other = dataclasses.replace(prepared, candidates=tuple(
        dataclasses.replace(c, tree=load_tree("uniform-64")) if c.name == "casia-b-paper" else c
        for c in prepared.candidates))
    with pytest.raises(ValueError, match=r"casia-b-paper.*hierarchies"):
        check_shared_candidates(open_study(config, storage), other)
    # A study extended with another tree is not refused; the new tree is recorded and checked from then on.
    extended = dataclasses.replace(prepared, candidates=(*prepared.candidates, dataclasses.replace(
        prepared.candidates[0], name="extra", tree=load_tree("casia-b-paper"))))
    check_shared_candidates(open_study(config, storage), extended)
    wrong_extra = dataclasses.replace(extended, candidates=(*prepared.candidates, dataclasses.replace(
        prepared.candidates[0], name="extra", tree=load_tree("uniform-64"))))
    with pytest.raises(ValueError, match="extra"):
        check_shared_candidates(open_study(config, storage), wrong_extra)


def test_fixed_choices_are_recorded_but_not_searched(write_study) -> None:
    # Single-valued entries make empty slice and contour plots in optuna-dashboard when registered
    # as parameters; they are kept as the trial's fixed choices instead.
    config = _config(write_study, "random", lr="[1e-3, 1e-3]")
    study = open_study(config, optuna.storages.InMemoryStorage())
    trial = _propose(study, config)
    assert set(trial.params) == {"tree", "fta"}
    choices = trial_choices(trial)
    assert choices["channels"] == "4-4-8" and choices["lr"] == 1e-3 and choices["cut_stage2"] == 2
    assert trial_cuts(trial) == [1, 2, 4]
