"""Per-node bootstrap support, row evidence and tree comparison on planted descriptor sums."""

from __future__ import annotations

import numpy as np
import pytest
from _planted import STRONG, planted_stats

from workbench.hierarchy import (
    DescriptorStats,
    HierarchyDiscovery,
    PartitionTree,
    TreeSupport,
    bootstrap_refits,
    bootstrap_stability,
    bootstrap_support,
    compare_cuts,
    preset_tree,
    read_support,
    row_evidence,
    support_from_refits,
)


def estimator(stats: DescriptorStats) -> HierarchyDiscovery:
    return HierarchyDiscovery(feature_groups=stats.feature_groups, random_state=0)


@pytest.fixture(scope="module")
def planted() -> tuple[DescriptorStats, PartitionTree, TreeSupport]:
    stats = planted_stats()
    est = estimator(stats).fit(stats.matrix())
    return stats, est.tree_, bootstrap_support(est, stats, n_resamples=40, ks=[2, 3, 4])


def test_strong_boundary_is_supported_and_the_ambiguous_region_is_not(
    planted: tuple[DescriptorStats, PartitionTree, TreeSupport],
) -> None:
    _, tree, support = planted
    assert tree.cut(2) == [STRONG, 64 - STRONG]
    assert support.node((0, STRONG)) >= 0.95 and support.node((STRONG, 64)) >= 0.95
    assert support.node((0, 64)) == 1.0
    inside = [n for n in support.nodes if n[0] >= STRONG and n[1] <= 64 and 3 <= n[1] - n[0] < 64 - STRONG]
    assert len(inside) > 10
    values = np.array([support.node(n) for n in inside])
    # pure noise: the full fit's nodes come back by chance only, never as reliably as the planted one
    assert values.mean() < 0.4 and values.max() < 0.9, values
    # within one row is never stricter than the same interval
    assert all(near >= same for same, near in support.nodes.values())
    (boundary,) = support.cut(2) or []
    assert (boundary.row, boundary.support) == (STRONG, pytest.approx(1.0, abs=0.05))
    assert support.n_resamples == 40 and set(support.boundaries) == {2, 3, 4}


def test_support_is_deterministic_for_a_seed() -> None:
    stats = planted_stats(subjects=6)
    est = estimator(stats)
    a = bootstrap_support(est, stats, n_resamples=8, random_state=3)
    b = bootstrap_support(est, stats, n_resamples=8, random_state=3)
    c = bootstrap_support(est, stats, n_resamples=8, random_state=4)
    assert a == b
    assert a.nodes != c.nodes


def test_support_and_stability_share_the_refits() -> None:
    stats = planted_stats(subjects=6)
    est = estimator(stats)
    refits = bootstrap_refits(est, stats, 5, random_state=2)
    again = bootstrap_refits(est, stats, 5, random_state=2)
    assert [r.tree_.tree_id for r in refits] == [r.tree_.tree_id for r in again]
    full = est.fit(stats.matrix()).tree_
    assert support_from_refits(full, [r.tree_ for r in refits], [2], seed=2) == bootstrap_support(
        est, stats, n_resamples=5, ks=[2], random_state=2
    )
    assert bootstrap_stability(est, stats, [2], n_resamples=5, random_state=2)[0].n_resamples == 5


def test_support_round_trips_through_the_tree_file(
    planted: tuple[DescriptorStats, PartitionTree, TreeSupport], tmp_path: object
) -> None:
    _, tree, support = planted
    path = tmp_path / "planted.json"  # type: ignore[operator]
    tree.with_metadata(provenance={"support": support.as_dict()}).save(path)
    loaded = read_support(PartitionTree.load(path))
    assert loaded is not None and loaded.nodes.keys() == support.nodes.keys()
    assert loaded.node((0, STRONG)) == pytest.approx(support.node((0, STRONG)), abs=1e-4)
    assert read_support(preset_tree("casia-b-paper")) is None
    alien = preset_tree("uniform-64").with_metadata(provenance={"support": support.as_dict()})
    with pytest.raises(ValueError, match="not nodes of this tree"):
        read_support(alien)


def test_refits_need_two_subjects() -> None:
    stats = planted_stats(subjects=1)
    with pytest.raises(ValueError, match="at least 2 subjects"):
        bootstrap_support(estimator(stats), stats, n_resamples=2)


def test_row_evidence_steps_add_up_and_peak_at_the_strong_boundary() -> None:
    stats = planted_stats()
    est = estimator(stats)
    evidence = row_evidence(stats, est)
    rows = est.transform_rows(stats.matrix())
    assert evidence.blocks == ["shape", "motion"] and evidence.steps.shape == (63, 2)
    np.testing.assert_allclose(evidence.steps.sum(axis=1), (np.diff(rows, axis=0) ** 2).sum(axis=1))
    # only the motion block separates the planted blocks: its step from row 23 to row 24 stands out
    motion = evidence.steps[:, 1]
    assert int(np.argmax(motion)) == STRONG - 1 and motion[STRONG - 1] > 20 * np.median(motion)
    assert evidence.distances.shape == (64, 64)
    np.testing.assert_allclose(evidence.distances, evidence.distances.T)
    assert np.all(np.diag(evidence.distances) == 0)


def test_compare_cuts_of_two_presets() -> None:
    paper, uniform = preset_tree("casia-b-paper"), preset_tree("uniform-64")
    k2, k4 = compare_cuts(paper, uniform, [2, 4])
    assert (k2.cut_a, k2.cut_b, k2.only_a, k2.only_b, k2.shared) == ([40, 24], [32, 32], [40], [32], [])
    assert k2.a_to_b == 8.0 and k2.b_to_a == 8.0 and 0 < k2.ari < 1
    assert k4.only_a == [8, 40, 56] and k4.only_b == [16, 32, 48]
    same = compare_cuts(paper, paper, [2, 4])
    assert all(c.ari == 1.0 and not c.only_a and not c.only_b for c in same)
    shifted = PartitionTree.from_levels(64, [[64], [41, 23]])
    (near,) = compare_cuts(paper, shifted, [2], tolerance=1)
    assert near.shared == [(40, 41)] and near.a_to_b == 1.0
    with pytest.raises(ValueError, match="differ in height"):
        compare_cuts(paper, preset_tree("uniform-32"), [2])
    with pytest.raises(ValueError, match="reachable k: 1, 3, 5"):
        compare_cuts(preset_tree("oumvlp-paper"), preset_tree("uniform-32"), [2])
