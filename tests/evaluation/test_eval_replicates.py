"""Seed-and-subject intervals and paired tree differences, checked on simulated studies with a known truth."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.evaluation._replicates import combine, compare_configurations, holm, verdict

SUBJECTS = 20
PROBES = 30


class SimulatedResult:
    """Stands in for an evaluation: per-subject hits out of ``PROBES`` probes, rank-1 = pooled hit rate."""

    primary_metric = "rank1"

    def __init__(self, hits: np.ndarray) -> None:
        self.hits = hits.astype(np.float64)
        self.subjects = tuple(f"{i:03d}" for i in range(len(hits)))

    def summary(self) -> dict[str, float]:
        return {"rank1": 100.0 * self.hits.sum() / (PROBES * len(self.hits))}

    def resampled(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        return {"rank1": 100.0 * (weights @ self.hits) / (weights.sum(1) * PROBES)}


def _simulate(rng: np.random.Generator, means: dict[str, float], seeds: int, seed_sd: float = 0.03,
              shared_sd: float = 0.03) -> dict[str, dict[int, list[SimulatedResult]]]:
    """Each subject has an ability; each seed shifts every configuration (shared) and each alone."""
    ability = rng.normal(0.0, 0.08, size=SUBJECTS)
    shared = rng.normal(0.0, shared_sd, size=seeds)
    groups: dict[str, dict[int, list[SimulatedResult]]] = {}
    for name, mean in means.items():
        for s in range(seeds):
            p = np.clip(mean + ability + shared[s] + rng.normal(0.0, seed_sd), 0.01, 0.99)
            groups.setdefault(name, {})[s] = [SimulatedResult(rng.binomial(PROBES, p))]
    return groups


def _truth(mean: float, rng: np.random.Generator) -> float:
    # The population rank-1: over new subjects and new seeds (clipping makes it differ slightly from `mean`).
    ability = rng.normal(0.0, 0.08, size=200_000)
    noise = rng.normal(0.0, np.hypot(0.03, 0.03), size=200_000)
    return float(100.0 * np.clip(mean + ability + noise, 0.01, 0.99).mean())


def test_the_interval_of_a_configuration_covers_its_population_rank1() -> None:
    rng = np.random.default_rng(0)
    truth = _truth(0.85, rng)
    covered = 0
    for i in range(200):
        groups = _simulate(rng, {"a": 0.85}, seeds=3)
        row = compare_configurations(groups, "a", resamples=200, seed=i)[0]
        covered += row.estimate.low <= truth <= row.estimate.high
    assert 0.90 <= covered / 200 <= 0.995, covered


def test_equal_configurations_give_uniform_p_values_and_a_real_difference_is_found() -> None:
    rng = np.random.default_rng(1)
    null_p, found = [], 0
    for i in range(200):
        rows = compare_configurations(_simulate(rng, {"ref": 0.85, "same": 0.85}, seeds=3), "ref",
                                      resamples=200, seed=i)
        null_p.append(next(r.p_holm for r in rows if r.name == "same"))
        rows = compare_configurations(_simulate(rng, {"ref": 0.80, "better": 0.90}, seeds=5), "ref",
                                      resamples=200, seed=i)
        better = next(r for r in rows if r.name == "better")
        found += better.p_holm < 0.05 and better.delta.mean > 0
    rejected = np.mean(np.array(null_p) < 0.05)
    assert 0.0 <= rejected <= 0.10, rejected
    assert 0.25 <= np.mean(np.array(null_p) < 0.5) <= 0.75  # spread over (0, 1), not piled at 1
    assert found >= 150


def test_identical_configurations_differ_by_exactly_zero() -> None:
    groups = _simulate(np.random.default_rng(2), {"ref": 0.85}, seeds=2)
    rows = compare_configurations({"ref": groups["ref"], "copy": groups["ref"]}, "ref", resamples=100)
    copy = next(r for r in rows if r.name == "copy")
    assert copy.delta.mean == 0.0 and copy.delta.low == 0.0 and copy.delta.high == 0.0 and copy.p_holm == 1.0
    assert "No tree differs from ref" in verdict(rows, "ref")


def test_intervals_shrink_with_more_seeds() -> None:
    rng = np.random.default_rng(3)
    width = {n: np.mean([(lambda e: e.high - e.low)(compare_configurations(_simulate(rng, {"a": 0.85}, seeds=n),
                                                                            "a", resamples=100)[0].estimate)
                         for _ in range(40)]) for n in (3, 10)}
    assert width[10] < 0.6 * width[3]


def test_one_seed_keeps_the_subject_part_and_says_seed_noise_is_missing() -> None:
    estimate = combine(np.array([80.0]), np.array([[78.0], [82.0], [80.0]]))
    assert estimate.df == float("inf") and estimate.low < 80.0 < estimate.high
    groups = _simulate(np.random.default_rng(4), {"ref": 0.8, "b": 0.8}, seeds=1)
    assert "set [budget] seeds >= 2" in verdict(compare_configurations(groups, "ref", resamples=50), "ref")


def test_holm_adjusts_step_down_and_stays_monotone() -> None:
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])


def test_results_on_other_subjects_and_a_missing_reference_are_refused() -> None:
    groups = _simulate(np.random.default_rng(5), {"ref": 0.8}, seeds=2)
    other = {0: [SimulatedResult(np.ones(SUBJECTS + 1, dtype=int))]}
    with pytest.raises(ValueError, match="other subjects"):
        compare_configurations({**groups, "b": other}, "ref")
    with pytest.raises(ValueError, match="reference 'uniform' has no runs"):
        compare_configurations(groups, "uniform")


def test_pooled_seed_variance_keeps_coverage_and_error_rate_with_two_seeds() -> None:
    rng = np.random.default_rng(6)
    means = {"ref": 0.85, "b": 0.85, "c": 0.85, "d": 0.85}
    truth = _truth(0.85, rng)
    covered, rejected, widths = 0, 0, []
    for i in range(200):
        rows = {r.name: r for r in compare_configurations(_simulate(rng, means, seeds=2), "ref", resamples=200, seed=i)}
        covered += rows["ref"].estimate.low <= truth <= rows["ref"].estimate.high
        rejected += rows["b"].delta.p_value < 0.05
        widths.append(rows["b"].delta.high - rows["b"].delta.low)
    assert 0.90 <= covered / 200 <= 0.995, covered
    assert rejected / 200 <= 0.10, rejected
    unpooled = [compare_configurations(_simulate(rng, means, seeds=2), "ref", resamples=200, pool_seeds=False)
                for _ in range(40)]
    unpooled_width = np.mean([next(r for r in rows if r.name == "b").delta.high
                              - next(r for r in rows if r.name == "b").delta.low for rows in unpooled])
    assert np.mean(widths) < 0.6 * unpooled_width  # one degree of freedom per row made them far wider


def test_the_seeds_a_design_asks_for_bring_its_paired_intervals_to_the_target() -> None:
    from workbench.evaluation._replicates import sizing

    rng = np.random.default_rng(7)
    means = {"ref": 0.85, "b": 0.86, "c": 0.84}
    asked = []
    for i in range(40):  # three seeds measured (about +-6 points): how many would give +-4?
        rows = compare_configurations(_simulate(rng, means, seeds=3, seed_sd=0.03), "ref", resamples=200, seed=i)
        planned = sizing(rows, target=4.0)
        assert planned is not None and 0.0 < planned.seed_share < 1.0
        if planned.seeds_needed is not None:
            asked.append(planned.seeds_needed)
    assert len(asked) >= 30
    n = int(np.median(asked))
    assert n > 3  # seed noise of 3 points per configuration: three seeds are not enough
    widths = []
    for i in range(40):  # ... and running that many gives intervals of about +-4 points
        rows = compare_configurations(_simulate(rng, means, seeds=n, seed_sd=0.03), "ref", resamples=200, seed=i)
        widths += [(r.delta.high - r.delta.low) / 2 for r in rows if r.delta is not None]
    assert 3.0 <= float(np.median(widths)) <= 5.0, (n, np.median(widths))


def test_sizing_says_when_only_more_subjects_can_narrow_the_intervals() -> None:
    from workbench.evaluation._replicates import sizing

    rows = compare_configurations(_simulate(np.random.default_rng(8), {"ref": 0.85, "b": 0.85}, seeds=4,
                                            seed_sd=0.0, shared_sd=0.0), "ref", resamples=300)
    planned = sizing(rows, target=0.5)
    assert planned is not None and planned.seeds_needed is None and planned.subject_half_width > 0.5
    assert "evaluate on more subjects" in planned.text()
    assert sizing(compare_configurations(_simulate(np.random.default_rng(9), {"ref": 0.85, "b": 0.85}, seeds=1),
                                         "ref", resamples=100)) is None  # one seed: its spread is unknown


def test_a_margin_claims_a_match_rarely_when_the_truth_sits_on_it_and_often_when_there_is_no_difference() -> None:
    from workbench.evaluation._replicates import margin_verdict

    rng = np.random.default_rng(11)
    margin = 5.0  # points; at 0.50 nothing is clipped, so the true difference is the means' difference
    on_the_edge = any_of_three = no_difference = 0
    runs = 300
    for i in range(runs):
        rows = compare_configurations(_simulate(rng, {"ref": 0.50, "worse": 0.45}, seeds=5), "ref",
                                      resamples=200, seed=i)
        (line,) = margin_verdict(rows, "ref", margin)
        on_the_edge += " matches ref" in line or " beats ref" in line
        rows = compare_configurations(_simulate(rng, {"ref": 0.50, "a": 0.45, "b": 0.45, "c": 0.45}, seeds=5),
                                      "ref", resamples=200, seed=i)
        any_of_three += any(" matches ref" in x or " beats ref" in x for x in margin_verdict(rows, "ref", margin))
        rows = compare_configurations(_simulate(rng, {"ref": 0.50, "same": 0.50}, seeds=5, seed_sd=0.01), "ref",
                                      resamples=200, seed=i)
        # A margin wider than these intervals' half-width (about 4 points here) is cleared by equal configurations.
        no_difference += " matches ref within 8 points" in margin_verdict(rows, "ref", 8.0)[0]
    # One-sided 2.5 % per claim; with three configurations the Bonferroni-widened ends keep it for any.
    assert on_the_edge / runs <= 0.06, on_the_edge
    assert any_of_three / runs <= 0.06, any_of_three
    assert no_difference / runs >= 0.9, no_difference


def test_a_margin_reading_names_beats_trails_and_undecided_and_refuses_a_margin_of_zero() -> None:
    from workbench.evaluation._replicates import margin_bounds, margin_verdict

    rng = np.random.default_rng(12)
    groups = _simulate(rng, {"ref": 0.50, "far-better": 0.70, "far-worse": 0.30}, seeds=5, seed_sd=0.005)
    groups["noisy"] = _simulate(rng, {"noisy": 0.50}, seeds=2, seed_sd=0.10)["noisy"]
    rows = compare_configurations(groups, "ref", resamples=200)
    lines = {line.split(" ")[0]: line for line in margin_verdict(rows, "ref", 1.0)}
    noisy = next(r.delta for r in rows if r.name == "noisy")
    low, high = margin_bounds(noisy, 3)
    assert low < noisy.low and high > noisy.high and margin_bounds(noisy, 1) == (noisy.low, noisy.high)
    assert f"interval {low:+.2f} to {high:+.2f}, Bonferroni over 3)" in lines["noisy"]
    assert lines["far-better"].startswith("far-better beats ref (delta +")
    assert "Bonferroni over 3" in lines["far-better"]
    assert lines["far-worse"].startswith("far-worse trails ref by more than 1 points (delta -")
    assert "is not shown to match ref within 1 points" in lines["noisy"]
    with pytest.raises(ValueError, match="positive"):
        margin_verdict(compare_configurations(groups, "ref", resamples=50), "ref", 0.0)
