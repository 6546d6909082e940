"""HierarchyDiscovery: scikit-learn contract, contiguity, unconstrained mode and awkward inputs."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from workbench.hierarchy import HierarchyDiscovery, PartitionTree


def blocks(sizes: list[int], features: int = 6, noise: float = 0.05, seed: int = 0) -> np.ndarray:
    """Rows drawn around one centre per block: ``[sum(sizes), features]``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), features)) * 3
    return np.concatenate([c + noise * rng.normal(size=(s, features)) for c, s in zip(centres, sizes, strict=True)])


def test_sklearn_parameter_protocol() -> None:
    est = HierarchyDiscovery(linkage="average", metric="cosine", n_clusters=3)
    params = est.get_params()
    assert params["linkage"] == "average" and params["contiguous"] is True
    twin = clone(est)
    assert twin.get_params() == params and twin is not est
    assert est.set_params(linkage="complete") is est and est.linkage == "complete"
    with pytest.raises(NotFittedError):
        _ = HierarchyDiscovery().tree_


@pytest.mark.parametrize("linkage", ["ward", "average", "complete", "single"])
def test_recovers_planted_contiguous_blocks(linkage: str) -> None:
    x = blocks([10, 22, 6, 26])
    est = HierarchyDiscovery(linkage=linkage, n_clusters=4).fit(x)
    assert est.fit(x) is est
    assert isinstance(est.tree_, PartitionTree)
    assert est.tree_.cut(4) == [10, 22, 6, 26]
    assert est.labels_.tolist() == np.repeat(np.arange(4), [10, 22, 6, 26]).tolist()
    assert est.linkage_.shape == (63, 4)
    heights = np.concatenate([np.zeros(64), est.linkage_[:, 2]])
    for a, b, h, _ in est.linkage_:
        assert h >= heights[int(a)] and h >= heights[int(b)]
    assert est.cophenetic_ > 0.8


def test_contiguous_mode_never_joins_separated_rows() -> None:
    # rows 0-9 and 20-29 are identical, 10-19 differ: only the unconstrained mode may pair the outer blocks
    x = blocks([10, 10, 10])
    x[20:] = x[:10]
    contiguous = HierarchyDiscovery(linkage="average").fit(x)
    assert contiguous.n_noncontiguous_ == 0
    assert contiguous.tree_.cut(3) == [10, 10, 10]
    free = HierarchyDiscovery(linkage="average", contiguous=False).fit(x)
    assert free.n_noncontiguous_ > 0
    with pytest.raises(ValueError, match=r"clusters are not row intervals \(contiguous=False\)"):
        _ = free.tree_
    labels = free.row_labels(2)
    assert labels[0] == labels[25] != labels[15]


def test_unconstrained_mode_gives_a_tree_when_clusters_happen_to_be_intervals() -> None:
    free = HierarchyDiscovery(linkage="ward", contiguous=False).fit(np.arange(8.0)[:, None] ** 2)
    assert free.n_noncontiguous_ == 0
    assert sum(free.tree_.cut(3)) == 8


@pytest.mark.parametrize("metric", ["cosine", "correlation", "euclidean"])
def test_constant_rows_do_not_crash(metric: str) -> None:
    x = blocks([8, 8])
    x[:4] = 0.0  # always-empty rows above the head
    est = HierarchyDiscovery(linkage="average", metric=metric, standardize=False).fit(x)
    assert np.all(np.isfinite(est.linkage_))
    assert est.tree_.cut(2)[0] in (4, 8)


def test_all_constant_input_gives_a_tree() -> None:
    est = HierarchyDiscovery().fit(np.ones((6, 3)))
    assert np.all(est.merge_distances_ == 0.0)
    assert est.tree_.cuts([1, 2, 6]) == [[6], [5, 1], [1] * 6]
    assert np.isnan(est.cophenetic_)


def test_bad_parameters_and_inputs_are_explained() -> None:
    with pytest.raises(ValueError, match="linkage='ward' needs metric='euclidean'"):
        HierarchyDiscovery(metric="cosine").fit(blocks([4, 4]))
    with pytest.raises(ValueError, match="unknown linkage"):
        HierarchyDiscovery(linkage="centroid").fit(blocks([4, 4]))
    with pytest.raises(ValueError, match=r"\[n_rows, n_features\]"):
        HierarchyDiscovery().fit(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        HierarchyDiscovery().fit(np.full((4, 2), np.nan))
    with pytest.raises(ValueError, match="at least 2 rows"):
        HierarchyDiscovery().fit(np.zeros((1, 3)))
