"""Scores: ground-truth agreement, bootstrap stability, cophenetic correlation."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.hierarchy import (
    DescriptorStats,
    HierarchyDiscovery,
    bootstrap_stability,
    boundary_distances,
    ground_truth_score,
)


def test_ground_truth_score_perfect_and_off_by_rows() -> None:
    perfect = ground_truth_score([10, 20, 34], [10, 30])
    assert perfect.row_error == 0.0 and perfect.ari == pytest.approx(1.0)
    off = ground_truth_score([12, 20, 32], [10, 30])
    assert off.true_to_cut == 2.0 and off.cut_to_true == 2.0 and off.ari < 1.0
    assert boundary_distances([5], [5, 25]) == (10.0, 0.0)
    with pytest.raises(ValueError, match="strictly inside"):
        ground_truth_score([32, 32], [0, 40])


def _planted_stats(subjects: int, noise: float) -> DescriptorStats:
    rng = np.random.default_rng(1)
    sizes = [12, 20, 32]
    centres = rng.normal(size=(3, 5)) * 2
    stats = DescriptorStats(64, [f"f{i}" for i in range(5)])
    for s in range(subjects):
        for _ in range(2):
            x = np.repeat(centres, sizes, axis=0) + noise * rng.normal(size=(64, 5))
            stats.add(x, f"s{s}")
    return stats


def test_stability_is_high_for_clear_structure() -> None:
    stats = _planted_stats(subjects=8, noise=0.3)
    scores = bootstrap_stability(HierarchyDiscovery(random_state=0), stats, ks=[2, 3], n_resamples=6)
    assert [s.k for s in scores] == [2, 3]
    assert all(s.ari_mean > 0.95 and s.jitter_mean < 0.5 for s in scores)


def test_stability_needs_two_subjects() -> None:
    stats = _planted_stats(subjects=1, noise=0.3)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        bootstrap_stability(HierarchyDiscovery(), stats, ks=[2], n_resamples=3)


def test_stability_is_reproducible_with_a_seed() -> None:
    stats = _planted_stats(subjects=5, noise=3.0)
    a = bootstrap_stability(HierarchyDiscovery(), stats, ks=[4], n_resamples=4, random_state=7)
    b = bootstrap_stability(HierarchyDiscovery(), stats, ks=[4], n_resamples=4, random_state=7)
    assert a == b
