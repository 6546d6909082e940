"""How well early figures rank trials: the report's Spearman between the first intermediate and the final value."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.trial import TrialState, create_trial

from workbench.search._tree_report import FIDELITY_MIN_TRIALS, pruning_fidelity


def _trials(early: list[float], final: list[float]) -> list[optuna.trial.FrozenTrial]:
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    return [create_trial(state=TrialState.COMPLETE, value=f, params={"x": 0.5}, distributions=dist,
                         intermediate_values={10: e, 20: f}) for e, f in zip(early, final, strict=True)]


def test_early_figures_that_keep_the_order_score_one_and_reversed_ones_minus_one() -> None:
    final = [0.6, 0.7, 0.8, 0.9, 0.95, 0.97]
    assert pruning_fidelity(_trials([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], final)) == (1.0, 10, 6)
    rho, step, n = pruning_fidelity(_trials([0.6, 0.5, 0.4, 0.3, 0.2, 0.1], final))  # type: ignore[misc]
    assert (rho, step, n) == (-1.0, 10, 6)


def test_noise_gives_a_correlation_near_zero_over_many_trials() -> None:
    rng = np.random.default_rng(0)
    rho, _, n = pruning_fidelity(_trials(list(rng.random(200)), list(rng.random(200))))  # type: ignore[misc]
    assert n == 200 and abs(rho) < 0.2


def test_too_few_trials_or_no_early_figures_report_nothing() -> None:
    few = FIDELITY_MIN_TRIALS - 1
    assert pruning_fidelity(_trials([0.1 * i for i in range(few)], [0.2 * i for i in range(few)])) is None
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    final_only = [create_trial(state=TrialState.COMPLETE, value=0.1 * i, params={"x": 0.5}, distributions=dist,
                               intermediate_values={20: 0.1 * i}) for i in range(8)]
    assert pruning_fidelity(final_only) is None
