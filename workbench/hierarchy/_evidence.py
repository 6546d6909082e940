"""The evidence behind a tree: row-by-row distances and each descriptor block's share of every row step."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial.distance import squareform

from workbench.hierarchy._discovery import HierarchyDiscovery, row_distances
from workbench.hierarchy._stats import DescriptorStats


@dataclass(frozen=True)
class RowEvidence:
    """What the clustering saw, per row.

    Attributes:
        distances: ``[n_rows, n_rows]`` distances between the rows the estimator clusters (after
            standardising and block weighting), in the estimator's metric.
        steps: ``[n_rows - 1, n_blocks]``; row ``r`` holds each block's squared Euclidean distance
            between rows ``r`` and ``r + 1`` (they add up to the whole squared step), so a boundary
            shows as a peak and its colours say which block put it there.
        blocks: block labels, one per column of ``steps``.
        metric: the metric of ``distances``.
        descriptor: the descriptor's name (may be empty).
    """

    distances: np.ndarray
    steps: np.ndarray
    blocks: list[str]
    metric: str
    descriptor: str

    @property
    def n_rows(self) -> int:
        """Rows covered."""
        return int(self.distances.shape[0])


def estimator_for(provenance: Mapping[str, Any], stats: DescriptorStats) -> HierarchyDiscovery:
    """The estimator a tree's provenance describes (linkage, metric, standardising), with ``stats``' blocks."""
    return HierarchyDiscovery(
        linkage=str(provenance.get("linkage", "ward")),
        metric=str(provenance.get("metric", "euclidean")),
        standardize=bool(provenance.get("standardize", True)),
        feature_groups=stats.feature_groups,
    )


def row_evidence(stats: DescriptorStats, estimator: HierarchyDiscovery | None = None) -> RowEvidence:
    """Row distances and per-block row steps of the descriptor in ``stats`` (all subjects).

    Args:
        stats: per-subject descriptor sums.
        estimator: whose ``transform_rows`` and ``metric`` to use (default: the default estimator with
            ``stats``' feature blocks, as ``discover_tree`` fits it).
    """
    est = estimator if estimator is not None else HierarchyDiscovery(feature_groups=stats.feature_groups)
    rows = est.transform_rows(stats.matrix())
    distances = squareform(row_distances(rows, est.metric))
    groups = est.feature_groups if est.feature_groups is not None else stats.feature_groups
    labels = list(groups) if groups is not None else [stats.descriptor or "descriptor"] * rows.shape[1]
    if len(labels) != rows.shape[1]:
        raise ValueError(f"{len(labels)} block labels for {rows.shape[1]} descriptor columns; give one per column")
    blocks = list(dict.fromkeys(labels))
    member = np.asarray(labels, dtype=object)
    diff2 = np.diff(rows, axis=0) ** 2
    steps = np.stack([diff2[:, member == b].sum(axis=1) for b in blocks], axis=1)
    return RowEvidence(distances, steps, blocks, est.metric, stats.descriptor)


__all__ = ["RowEvidence", "estimator_for", "row_evidence"]
