"""Scores of a discovered hierarchy: cophenetic fit, bootstrap stability, agreement with true parts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.cluster.hierarchy import cophenet
from sklearn.metrics import adjusted_rand_score

from workbench.hierarchy._rescale import _boundaries
from workbench.hierarchy._support import bootstrap_refits

if TYPE_CHECKING:
    from workbench.hierarchy._discovery import HierarchyDiscovery
    from workbench.hierarchy._stats import DescriptorStats


def cophenetic_correlation(linkage: np.ndarray, distances: np.ndarray) -> float:
    """Correlation between merge heights and the condensed row ``distances`` (1 is a perfect fit).

    Returns NaN when the distances are all equal (nothing to correlate).
    """
    if np.ptp(distances) == 0:
        return float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        corr, _ = cophenet(linkage, distances)
    return float(corr)


def split_labels(split: Sequence[int]) -> np.ndarray:
    """Row labels ``[sum(split)]`` of a split list: ``[2, 3] -> [0, 0, 1, 1, 1]``."""
    return np.repeat(np.arange(len(split)), [int(s) for s in split])


def boundary_distances(found: Sequence[int], true: Sequence[int]) -> tuple[float, float]:
    """Mean row distance from each true boundary to the nearest found one, and from found to true.

    Both arguments are inner boundary rows (``[40]`` for a ``[40, 24]`` cut). A side with no
    boundaries to measure gives 0.
    """
    f = np.asarray(found, dtype=np.float64)
    t = np.asarray(true, dtype=np.float64)
    if f.size == 0 or t.size == 0:
        return (0.0 if t.size == 0 else float("inf"), 0.0 if f.size == 0 else float("inf"))
    gaps = np.abs(t[:, None] - f[None, :])
    return float(gaps.min(axis=1).mean()), float(gaps.min(axis=0).mean())


@dataclass(frozen=True)
class GroundTruthScore:
    """Agreement of a cut with known part boundaries (synthetic data)."""

    k: int
    cut: list[int]
    true_boundaries: list[int]
    true_to_cut: float
    cut_to_true: float
    row_error: float
    ari: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for printing and logging."""
        return asdict(self)


def ground_truth_score(cut: Sequence[int], true_boundaries: Sequence[int]) -> GroundTruthScore:
    """Row error (mean of both boundary distances) and row-label ARI of ``cut`` against the truth.

    Args:
        cut: region heights summing to the row count.
        true_boundaries: inner rows where the true parts meet, ascending.
    """
    n_rows = int(sum(cut))
    true = sorted(int(b) for b in true_boundaries)
    if any(not 0 < b < n_rows for b in true):
        raise ValueError(f"true boundaries {true} must lie strictly inside 0..{n_rows}")
    true_split = [b - a for a, b in zip([0, *true], [*true, n_rows], strict=True)]
    found = _boundaries(cut)
    t2c, c2t = boundary_distances(found, true)
    ari = float(adjusted_rand_score(split_labels(true_split), split_labels(cut)))
    return GroundTruthScore(len(cut), list(map(int, cut)), true, t2c, c2t, (t2c + c2t) / 2.0, ari)


@dataclass(frozen=True)
class StabilityScore:
    """How much the cut at ``k`` regions moves when subjects are resampled with replacement."""

    k: int
    n_resamples: int
    ari_mean: float
    ari_std: float
    jitter_mean: float
    jitter_std: float

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for printing and logging."""
        return asdict(self)


def bootstrap_stability(
    estimator: HierarchyDiscovery,
    stats: DescriptorStats,
    ks: Sequence[int],
    n_resamples: int = 20,
    random_state: int | None = None,
) -> list[StabilityScore]:
    """Refit on subject resamples; per k, ARI of row labels and boundary jitter against the full fit.

    Jitter is the mean row distance from each full-data boundary to the nearest resampled one.
    Needs at least two subjects. ``random_state`` defaults to the estimator's.
    """
    from sklearn.base import clone

    full = clone(estimator).fit(stats.matrix())
    return stability_from_refits(full, bootstrap_refits(estimator, stats, n_resamples, random_state), ks)


def stability_from_refits(
    full: HierarchyDiscovery, refits: Sequence[HierarchyDiscovery], ks: Sequence[int]
) -> list[StabilityScore]:
    """Per k, ARI and boundary jitter of each refit's cut against ``full``'s (see ``bootstrap_stability``)."""
    if not refits:
        raise ValueError("no refits to measure stability on; give at least one resampled fit")
    ks = [int(k) for k in ks]
    reference = {k: full.row_labels(k) for k in ks}
    aris: dict[int, list[float]] = {k: [] for k in ks}
    jitters: dict[int, list[float]] = {k: [] for k in ks}
    for refit in refits:
        for k in ks:
            labels = refit.row_labels(k)
            aris[k].append(float(adjusted_rand_score(reference[k], labels)))
            ref_b = np.flatnonzero(np.diff(reference[k])) + 1
            new_b = np.flatnonzero(np.diff(labels)) + 1
            if full.n_noncontiguous_ == 0 and refit.n_noncontiguous_ == 0:
                jitters[k].append(boundary_distances(new_b.tolist(), ref_b.tolist())[0])
    return [
        StabilityScore(
            k,
            len(refits),
            float(np.mean(aris[k])),
            float(np.std(aris[k])),
            float(np.mean(jitters[k])) if jitters[k] else float("nan"),
            float(np.std(jitters[k])) if jitters[k] else float("nan"),
        )
        for k in ks
    ]


__all__ = [
    "GroundTruthScore",
    "StabilityScore",
    "bootstrap_stability",
    "boundary_distances",
    "cophenetic_correlation",
    "ground_truth_score",
    "split_labels",
    "stability_from_refits",
]
