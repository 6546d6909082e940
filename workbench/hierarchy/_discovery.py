"""``HierarchyDiscovery``: agglomerative clustering of silhouette rows, contiguous by default."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster
from scipy.cluster.hierarchy import linkage as scipy_linkage
from scipy.spatial.distance import pdist, squareform
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from workbench.hierarchy._scores import cophenetic_correlation
from workbench.hierarchy._tree import PartitionTree

LINKAGES = ("ward", "average", "complete", "single")
METRICS = ("euclidean", "cosine", "correlation", "cityblock", "sqeuclidean", "chebyshev")


def row_distances(x: np.ndarray, metric: str) -> np.ndarray:
    """Condensed pairwise distances between rows of ``x: [n_rows, n_features]``.

    Cosine and correlation are undefined for a constant row (zero norm or zero variance, e.g. rows
    above the head that are always empty); such a pair gets distance 0 when the rows are equal and
    1 ("unrelated") otherwise, instead of NaN.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = pdist(x, metric=metric)
    bad = ~np.isfinite(dist)
    if bad.any():
        same = pdist(x, metric="chebyshev") == 0
        dist[bad] = np.where(same[bad], 0.0, 1.0)
    return np.clip(dist, 0.0, None)


def _contiguous_linkage(x: np.ndarray, dist: np.ndarray, method: str) -> np.ndarray:
    """Agglomerate rows merging only adjacent intervals; scipy-style linkage with raw merge distances."""
    n = x.shape[0]
    full = squareform(dist)
    # Each cluster is an interval [start, stop) with its scipy cluster id; kept in row order.
    clusters: list[tuple[int, int, int]] = [(r, r + 1, r) for r in range(n)]
    centroids = {r: x[r].astype(np.float64) for r in range(n)}
    z = np.zeros((n - 1, 4))

    def distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
        if method == "ward":
            na, nb = a[1] - a[0], b[1] - b[0]
            gap = centroids[a[2]] - centroids[b[2]]
            return float(np.sqrt(2.0 * na * nb / (na + nb)) * np.linalg.norm(gap))
        block = full[a[0] : a[1], b[0] : b[1]]
        if method == "average":
            return float(block.mean())
        if method == "complete":
            return float(block.max())
        return float(block.min())

    gaps = [distance(clusters[i], clusters[i + 1]) for i in range(n - 1)]
    for step in range(n - 1):
        # The first minimum wins ties, so the result is deterministic (top rows merge first).
        i = int(np.argmin(gaps))
        a, b = clusters[i], clusters[i + 1]
        new_id = n + step
        size = b[1] - a[0]
        z[step] = (a[2], b[2], gaps[i], size)
        if method == "ward":
            na, nb = a[1] - a[0], b[1] - b[0]
            centroids[new_id] = (na * centroids.pop(a[2]) + nb * centroids.pop(b[2])) / size
        merged = (a[0], b[1], new_id)
        clusters[i : i + 2] = [merged]
        del gaps[i]
        if i > 0:
            gaps[i - 1] = distance(clusters[i - 1], merged)
        if i < len(clusters) - 1:
            gaps[i] = distance(merged, clusters[i + 1])
    return z


def _monotone(z: np.ndarray) -> np.ndarray:
    """Raise each merge height to at least its children's (constrained merges can invert)."""
    n = z.shape[0] + 1
    out = z.copy()
    heights = np.zeros(2 * n - 1)
    for step, (a, b, dist, _) in enumerate(z):
        heights[n + step] = max(dist, heights[int(a)], heights[int(b)])
        out[step, 2] = heights[n + step]
    return out


def _noncontiguous_clusters(z: np.ndarray) -> int:
    """How many clusters of a linkage are not a run of consecutive rows."""
    n = z.shape[0] + 1
    members: list[tuple[int, int, int]] = [(r, r, 1) for r in range(n)]  # (min, max, size)
    broken = 0
    for a, b, _, _ in z:
        ma, mb = members[int(a)], members[int(b)]
        merged = (min(ma[0], mb[0]), max(ma[1], mb[1]), ma[2] + mb[2])
        broken += merged[1] - merged[0] + 1 != merged[2]
        members.append(merged)
    return broken


class HierarchyDiscovery(BaseEstimator):
    """Agglomerative clustering of rows ``X: [n_rows, n_features]`` into a tree of body parts.

    With ``contiguous=True`` (default) a row only merges with the groups directly above or below it,
    so every cluster is a row interval and ``tree_`` is a ``PartitionTree``. ``contiguous=False``
    runs unconstrained scipy clustering for comparison; its clusters need not be intervals, so it
    sets ``linkage_`` and ``n_noncontiguous_`` and ``tree_`` raises unless every cluster is one.

    Args:
        linkage: ``ward`` (Euclidean only), ``average``, ``complete`` or ``single``.
        metric: row distance (``euclidean``, ``cosine``, ``correlation``, ``cityblock``, ...).
        contiguous: merge only adjacent row groups.
        standardize: z-score each feature over the rows first (constant features stay 0).
        feature_groups: block label per feature (e.g. ``DescriptorStats.feature_groups``); each block's
            columns are then divided by the square root of the block's non-constant column count,
            so every block adds the same total variance to the row distances whatever its size.
        n_clusters: if set, ``labels_`` holds row labels of the cut with this many regions.
        random_state: seed for the bootstrap in ``bootstrap_stability`` (fitting is deterministic).

    Fitted attributes: ``linkage_ [n_rows - 1, 4]`` (scipy layout, monotone heights),
    ``merge_distances_ [n_rows - 1]`` (raw), ``cophenetic_``, ``n_noncontiguous_``, ``labels_``,
    ``n_rows_``, ``n_features_in_``, ``tree_``.
    """

    def __init__(
        self,
        *,
        linkage: str = "ward",
        metric: str = "euclidean",
        contiguous: bool = True,
        standardize: bool = True,
        feature_groups: Sequence[str] | None = None,
        n_clusters: int | None = None,
        random_state: int | None = None,
    ) -> None:
        self.linkage = linkage
        self.metric = metric
        self.contiguous = contiguous
        self.standardize = standardize
        self.feature_groups = feature_groups
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.linkage not in LINKAGES:
            raise ValueError(f"unknown linkage {self.linkage!r}; choose one of {', '.join(LINKAGES)}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; choose one of {', '.join(METRICS)}")
        if self.linkage == "ward" and self.metric != "euclidean":
            raise ValueError(f"linkage='ward' needs metric='euclidean', got {self.metric!r}; use average or complete")

    @staticmethod
    def _check_x(x: Any) -> np.ndarray:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim != 2:
            raise ValueError(f"X must be a row descriptor [n_rows, n_features], got shape {list(arr.shape)}")
        if arr.shape[0] < 2 or arr.shape[1] < 1:
            raise ValueError(f"X needs at least 2 rows and 1 feature, got shape {list(arr.shape)}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("X contains NaN or inf; check the descriptor input")
        return arr

    def transform_rows(self, x: Any) -> np.ndarray:
        """The matrix the distances are computed on (standardized when ``standardize``)."""
        arr = self._check_x(x)
        std = arr.std(axis=0)
        varying = std > 1e-12 * (1 + np.abs(arr).max(axis=0))
        if self.standardize:
            arr = (arr - arr.mean(axis=0)) / np.where(varying, std, 1.0)
        if self.feature_groups is None:
            return arr
        groups = np.asarray(list(self.feature_groups), dtype=object)
        if groups.shape != (arr.shape[1],):
            raise ValueError(
                f"feature_groups has {groups.size} labels but X has {arr.shape[1]} features; give one block "
                "label per column (DescriptorStats.feature_groups) or None"
            )
        scale = np.ones(arr.shape[1])
        for label in dict.fromkeys(groups.tolist()):
            members = groups == label
            # Constant columns carry no distance, so they do not dilute their block's weight.
            scale[members] = 1.0 / np.sqrt(max(1, int((members & varying).sum())))
        return arr * scale

    def fit(self, X: Any, y: Any = None) -> HierarchyDiscovery:
        """Cluster the rows of ``X: [n_rows, n_features]``; returns ``self``."""
        self._check_params()
        data = self.transform_rows(X)
        n = data.shape[0]
        dist = row_distances(data, self.metric)
        if self.contiguous:
            raw = _contiguous_linkage(data, dist, self.linkage)
        elif self.linkage == "ward":
            raw = scipy_linkage(data, method="ward", metric="euclidean")
        else:
            raw = scipy_linkage(dist, method=self.linkage)
        self.merge_distances_ = raw[:, 2].copy()
        self.linkage_ = _monotone(raw)
        self.n_rows_ = n
        self.n_features_in_ = data.shape[1]
        self.n_noncontiguous_ = _noncontiguous_clusters(self.linkage_)
        self.cophenetic_ = cophenetic_correlation(self.linkage_, dist)
        self._tree: PartitionTree | None = None
        if self.n_noncontiguous_ == 0:
            provenance = {
                "linkage": self.linkage,
                "metric": self.metric,
                "contiguous": bool(self.contiguous),
                "standardize": bool(self.standardize),
                "feature_groups": None if self.feature_groups is None else list(dict.fromkeys(self.feature_groups)),
                "seed": self.random_state,
            }
            self._tree = PartitionTree.from_linkage(self.linkage_, n, provenance=provenance)
        if self.n_clusters is not None:
            self.labels_ = self.row_labels(int(self.n_clusters))
        return self

    @property
    def tree_(self) -> PartitionTree:
        """The fitted ``PartitionTree``; raises when clusters are not row intervals."""
        if not hasattr(self, "linkage_"):
            raise NotFittedError("HierarchyDiscovery is not fitted yet; call fit(X) first")
        if self._tree is None:
            raise ValueError(
                f"no PartitionTree: {self.n_noncontiguous_} of {self.n_rows_ - 1} clusters are not row "
                "intervals (contiguous=False); use linkage_ and row_labels(k), or fit with contiguous=True"
            )
        return self._tree

    def row_labels(self, k: int) -> np.ndarray:
        """Row labels ``[n_rows]`` of the clustering into ``k`` groups (intervals when contiguous)."""
        if not hasattr(self, "linkage_"):
            raise NotFittedError("HierarchyDiscovery is not fitted yet; call fit(X) first")
        if not 1 <= k <= self.n_rows_:
            raise ValueError(f"k must be between 1 and {self.n_rows_} rows, got {k}")
        if self._tree is not None:
            return self._tree.labels(k)
        labels = fcluster(self.linkage_, t=k, criterion="maxclust")
        # Renumber by first appearance from the top so labels read like a cut's.
        _, first = np.unique(labels, return_index=True)
        order = {labels[i]: rank for rank, i in enumerate(sorted(first))}
        return np.array([order[v] for v in labels])


__all__ = ["LINKAGES", "METRICS", "HierarchyDiscovery", "row_distances"]
