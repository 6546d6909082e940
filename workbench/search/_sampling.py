"""How trials are proposed: the study's sampler, seeded per trial, and the check that no two trials repeat.

Several processes may work on one study: two terminals on one machine, ``--workers N``, or a worker
on each machine against one PostgreSQL database. Seeding each process's sampler with the study seed
made every process propose the same sequence. Here the sampler's random state is derived from the
study seed and the trial's *number*, which the storage hands out once per trial, so:

- no two trials draw from the same random state, whichever process asks for them;
- a study run by one process is reproducible: trial ``n`` always starts from the same state;
- TPE runs with the constant liar, so running trials count as observed and are not proposed again.

Random draws can still land on a configuration another trial holds (a small categorical space, or
two processes asking at the same instant). :func:`duplicate_of` finds such a trial before any work
is done; the runner then records the proposal as a skipped duplicate and asks again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

from workbench.search._config import StudyConfig
from workbench.search._space import FIXED_CHOICES_KEY, trial_choices

#: User attribute of a proposal that repeated an earlier trial: that trial's number.
DUPLICATE_OF_KEY = "duplicate_of"

#: States in which a trial holds its configuration: a new trial must not repeat it.
_HOLDING_STATES = (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING)


def grid_space(config: StudyConfig, candidates: Sequence[str]) -> dict[str, list[Any]]:
    """Every choice of the search space as Optuna's ``GridSampler`` takes it (the learning rate must be fixed)."""
    from workbench.search._space import channels_key

    space = config.space
    if space.lr[0] != space.lr[1]:
        raise ValueError(f"sampler.name = 'grid' needs one learning rate; space.lr is a range {list(space.lr)}")
    grid: dict[str, list[Any]] = {"tree": list(candidates)}
    if space.models:
        grid["model"] = list(space.models)
    for i, ks in enumerate(space.stage_cuts):
        grid[f"cut_stage{i + 2}"] = list(ks)
    grid["channels"] = [channels_key(c) for c in space.channels]
    grid["frames"] = list(space.frames)
    grid["fta"] = list(space.fta)
    # An entry with one value is fixed, not searched (see ``suggest``); the grid is the same size.
    return {name: values for name, values in grid.items() if len(values) > 1}


class _BudgetedGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler in an ask-and-tell loop: the trial budget ends the study, not ``study.stop()``
    (which Optuna only allows inside ``optimize``)."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        return None


def check_grid_budget(config: StudyConfig, candidates: Sequence[str], budget: int) -> None:
    """A grid study's budget must not exceed its grid (extra trials would repeat combinations)."""
    if config.sampler.name != "grid":
        return
    size = 1
    for values in grid_space(config, candidates).values():
        size *= len(values)
    if budget > size:
        raise ValueError(f"budget.trials = {budget} but the grid has {size} combinations; set budget.trials = "
                         f"{size} (replicate configurations with budget.seeds instead)")


def trial_seed(study_seed: int, number: int) -> int:
    """The sampler seed of trial ``number``: a hash of the study seed and the number (a 32-bit integer)."""
    return int(np.random.SeedSequence([int(study_seed) & 0xFFFFFFFF, int(number)]).generate_state(1)[0])


class TrialSeededSampler(optuna.samplers.BaseSampler):
    """A sampler whose random state is a function of the study seed and the trial number.

    ``factory(seed)`` builds the underlying Optuna sampler; one is built per trial, from
    :func:`trial_seed`, and dropped when the trial is told. Optuna's samplers keep nothing between
    trials that the storage does not hold, so this changes where randomness comes from and nothing else.
    """

    def __init__(self, factory: Callable[[int], optuna.samplers.BaseSampler], seed: int) -> None:
        self._factory = factory
        self._seed = seed
        self._by_trial: dict[int, optuna.samplers.BaseSampler] = {}

    def _for(self, trial: FrozenTrial) -> optuna.samplers.BaseSampler:
        sampler = self._by_trial.get(trial.number)
        if sampler is None:
            if len(self._by_trial) > 64:  # trials never told (a crashed objective) must not pile up
                self._by_trial.pop(min(self._by_trial))
            sampler = self._by_trial[trial.number] = self._factory(trial_seed(self._seed, trial.number))
        return sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._for(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._for(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self._for(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._for(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._for(trial).after_trial(study, trial, state, values)
        self._by_trial.pop(trial.number, None)

    def reseed_rng(self) -> None:
        return None  # the seed is a function of the trial number; there is no process-wide state to reseed


def create_sampler(config: StudyConfig, candidates: Sequence[str] = ()) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded per trial (see the module's docstring).

    ``grid`` runs every combination of ``candidates`` (tree names) and the space once, in a seeded order.
    """
    s = config.sampler
    factory: Callable[[int], optuna.samplers.BaseSampler]
    if s.name == "grid":
        grid = grid_space(config, candidates)

        def factory(seed: int) -> optuna.samplers.BaseSampler:
            return _BudgetedGridSampler(grid, seed=seed)
    elif s.name == "random":
        def factory(seed: int) -> optuna.samplers.BaseSampler:
            return optuna.samplers.RandomSampler(seed=seed)
    elif s.name == "nsga2":
        def factory(seed: int) -> optuna.samplers.BaseSampler:
            return optuna.samplers.NSGAIISampler(seed=seed)
    elif s.name == "gp":
        def factory(seed: int) -> optuna.samplers.BaseSampler:
            return optuna.samplers.GPSampler(seed=seed, n_startup_trials=s.startup_trials)
    else:
        def factory(seed: int) -> optuna.samplers.BaseSampler:
            return optuna.samplers.TPESampler(seed=seed, n_startup_trials=s.startup_trials, multivariate=True,
                                              constant_liar=True)
    return TrialSeededSampler(factory, s.seed)


def _configuration(trial: FrozenTrial, fixed_choices: Mapping[str, Any]) -> dict[str, Any] | None:
    if trial.state == TrialState.WAITING:
        queued = trial.system_attrs.get("fixed_params")
        # A queued retry replays its searched parameters under this study's fixed choices.
        return {**fixed_choices, **queued} if isinstance(queued, Mapping) else None
    return trial_choices(trial)


def _started_within(trial: FrozenTrial, seconds: float) -> bool:
    started = trial.datetime_start
    return started is not None and time.time() - started.timestamp() < seconds


def duplicate_of(study: optuna.Study, trial: optuna.Trial, seeds: Sequence[int], *,
                 wait_seconds: float = 30.0, poll_seconds: float = 0.2) -> int | None:
    """The number of an earlier trial that holds ``trial``'s configuration with the same seeds, or ``None``.

    Call it once every parameter of ``trial`` has been suggested. A running, complete or pruned trial
    with a lower number, or a queued one, holds its configuration; failed trials hold nothing (their
    retries are queued). The lower number wins, so two processes that drew the same configuration at
    the same instant agree on which one yields. An earlier trial still drawing its parameters is
    waited for (up to ``wait_seconds``) so that a race cannot let both run.
    """
    mine = trial_choices(trial)
    mine_fixed = trial.user_attrs.get(FIXED_CHOICES_KEY) or {}
    names = set(mine)
    own_seeds = list(seeds)
    deadline = time.monotonic() + wait_seconds
    while True:
        pending = False
        for other in study.get_trials(deepcopy=False, states=_HOLDING_STATES):
            if other.number == trial.number:
                continue
            if other.state != TrialState.WAITING and other.number > trial.number:
                continue
            held = _configuration(other, mine_fixed)
            if held is None:
                continue
            if set(held) != names:
                pending = pending or (other.state == TrialState.RUNNING and set(held) < names
                                      and _started_within(other, 2 * wait_seconds))
                continue
            if held == mine and list(other.user_attrs.get("seeds", own_seeds)) == own_seeds:
                return other.number
        if not pending or time.monotonic() >= deadline:
            return None
        time.sleep(poll_seconds)


def count_repeats(study: optuna.Study) -> int:
    """Proposals recorded as repeats of other trials (failed, with ``DUPLICATE_OF_KEY``): not failures."""
    return sum(DUPLICATE_OF_KEY in t.user_attrs for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
