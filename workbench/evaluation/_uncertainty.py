"""Uncertainty of evaluation figures by resampling test subjects: bootstrap intervals and paired tests.

The probes of one subject are correlated (one body, one set of clothes), so the unit resampled is the
probe's subject, never the single probe. The gallery stays fixed: its size sets the difficulty of the
task, and resampling gallery subjects would duplicate or delete distractors and bias rank-1 upward.
A resample is then a weight vector over the probe subjects (multinomial counts: n draws of n
subjects), and every headline figure is recomputed from per-subject sufficient statistics (hit counts,
probe counts, AP sums ...) under those weights: a ratio of weighted sums, for all resamples at once.

``paired_results`` compares two results on the same subjects: the same subject weights for both
models give the interval of the difference, and a permutation test that swaps the two models'
statistics subject by subject gives its p-value.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from workbench.evaluation._results import EvaluationResult

CONFIDENCE = 95.0
_TOLERANCE = 1e-12


def subject_weights(n_subjects: int, resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Bootstrap weights ``float64 [resamples, n_subjects]``: how often each subject is drawn in n draws.

    Every row sums to ``n_subjects``; the same seed gives the same weights.
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects: {n_subjects}; resampling needs at least one probe subject")
    if resamples < 0:
        raise ValueError(f"resamples: {resamples}; give 0 (no resampling) or more")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_subjects, size=(resamples, n_subjects))
    # One bincount over all rows at once: row r's draws are shifted into bins [r * n, (r + 1) * n).
    draws += (np.arange(resamples, dtype=np.int64) * n_subjects)[:, None]
    counts = np.bincount(draws.ravel(), minlength=resamples * n_subjects)
    return counts.reshape(resamples, n_subjects).astype(np.float64)


def weighted_sums(weights: np.ndarray, statistics: np.ndarray) -> np.ndarray:
    """Subject-weighted sums: ``weights [r, subjects]`` x ``statistics [subjects, m]`` -> ``float64 [r, m]``.

    Multiplied by torch, on the threads the distance passes use: numpy's OpenBLAS threads spin for a
    while after a call and, on a small machine, slowed the next evaluation by a third.
    """
    product = torch.mm(torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float64)),
                       torch.from_numpy(np.ascontiguousarray(statistics, dtype=np.float64)))
    return product.numpy()


def percentile_interval(values: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of resampled ``values [resamples]``; NaN resamples are left out."""
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return float("nan"), float("nan")
    tail = (100.0 - CONFIDENCE) / 2
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def interval_keys(key: str) -> tuple[str, str]:
    """The summary keys of the interval of ``key``: ``<key>_ci_low``, ``<key>_ci_high``."""
    return f"{key}_ci_low", f"{key}_ci_high"


def with_intervals(headline: dict[str, float], resampled: dict[str, np.ndarray]) -> dict[str, float]:
    """``headline`` with each figure followed by its interval keys, computed from ``resampled``."""
    out: dict[str, float] = {}
    for key, value in headline.items():
        out[key] = value
        low_key, high_key = interval_keys(key)
        out[low_key], out[high_key] = percentile_interval(resampled[key])
    return out


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``100 * numerator / denominator`` in percent, NaN where the denominator is 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 100.0 * numerator / denominator, np.nan)


def nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """``np.nanmean`` without the warning on all-NaN slices (a view with nothing to compare is expected)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.asarray(np.nanmean(values, axis=axis))


def _same_subjects(a: EvaluationResult, b: EvaluationResult) -> tuple[str, ...]:
    subjects_a, subjects_b = a.subjects, b.subjects
    for name, result, subjects in (("a", a, subjects_a), ("b", b, subjects_b)):
        if subjects is None:
            raise ValueError(
                f"result {name} ({result.protocol}) keeps no per-subject statistics; evaluate it with "
                "workbench.evaluation.evaluate or read it with load_result from a folder with subject_scores.npz"
            )
    assert subjects_a is not None and subjects_b is not None
    if subjects_a != subjects_b:
        only_a = sorted(set(subjects_a) - set(subjects_b))
        only_b = sorted(set(subjects_b) - set(subjects_a))
        raise ValueError(
            f"subjects: result a has {len(subjects_a)} probe subjects, b {len(subjects_b)} (only in a: "
            f"{only_a[:5]}, only in b: {only_b[:5]}); pair results of the same test set"
        )
    return subjects_a


def paired_results(
    a: EvaluationResult,
    b: EvaluationResult,
    *,
    key: str | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, float]:
    """Compare two results on the same probe subjects: ``summary()[key]`` of ``a`` minus that of ``b``.

    Returns ``delta``; ``ci_low``/``ci_high``, the 95 % percentile interval of a paired subject
    bootstrap (the same weights for both); ``p_value``, two-sided, from a permutation test that swaps
    the two models' per-subject statistics on a fair coin per subject; ``n_subjects``; ``resamples``.

    Args:
        a, b: results of the same protocol on the same test subjects.
        key: the summary figure to compare (default: ``a.primary_metric``, ``rank1``).
        resamples: bootstrap resamples and permutations (at least 1).
        seed: seed of both.
    """
    if resamples < 1:
        raise ValueError(f"resamples: {resamples}; the paired comparison needs at least 1")
    subjects = _same_subjects(a, b)
    key = key or a.primary_metric
    headline_a, headline_b = a._headline(), b._headline()
    if key not in headline_a or key not in headline_b:
        raise ValueError(f"key {key!r}: expected a figure of both results, one of {', '.join(headline_a)}")
    stats_a, stats_b = a._subject_statistics(), b._subject_statistics()
    if type(a) is not type(b) or stats_a.shape != stats_b.shape or list(headline_a) != list(headline_b):
        raise ValueError(
            f"results a ({a.protocol}, statistics {list(stats_a.shape)}) and b ({b.protocol}, "
            f"{list(stats_b.shape)}) differ in layout; pair results of the same protocol"
        )
    delta = headline_a[key] - headline_b[key]
    weights = subject_weights(len(subjects), resamples, seed)
    boot = a._figures(weighted_sums(weights, stats_a))[key] - b._figures(weighted_sums(weights, stats_b))[key]
    low, high = percentile_interval(boot)
    # Swapping subject s moves its statistics from one model's sums to the other's: a' = A + c @ (B - A).
    coins = np.random.default_rng([seed, 1]).integers(0, 2, size=(resamples, len(subjects))).astype(np.float64)
    shift = weighted_sums(coins, stats_b - stats_a)
    swapped = a._figures(stats_a.sum(0) + shift)[key] - b._figures(stats_b.sum(0) - shift)[key]
    extreme = int(np.sum(np.abs(swapped) >= abs(delta) - _TOLERANCE))
    p_value = (1 + extreme) / (1 + resamples) if not np.isnan(delta) else float("nan")
    return {"delta": float(delta), "ci_low": low, "ci_high": high, "p_value": p_value,
            "n_subjects": len(subjects), "resamples": resamples}
