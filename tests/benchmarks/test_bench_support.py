"""Per-node support: 100 subject resamples of default-synthetic-sized descriptor sums (target: under 60 s).

The sums have the default set's shape (50 subjects, 110 sequences each, 64 rows, ``row-articulation``'s
448 columns in a ``motion`` and a ``tilt`` block) with a planted six-part body, so the refits build
trees like the real ones. Resamples reweight these sums and never touch sequences, so the data set
itself is not needed. Baseline, measured in the same run: one fit on all subjects; the ratio says
what a resample costs beyond a fit (reweighting the sums, reading the tree).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from machine_info import cpu_name
from threadpoolctl import threadpool_limits

from workbench.hierarchy import DescriptorStats, HierarchyDiscovery, bootstrap_refits, support_from_refits

pytestmark = pytest.mark.benchmark

SUBJECTS, SEQUENCES, ROWS = 50, 110, 64
MOTION, TILT = 5 * ROWS, 2 * ROWS
PARTS = [11, 18, 4, 12, 14, 5]  # the default set's 6-region cut
RESAMPLES = 100
TARGET_S = 60.0


def default_sized_stats(seed: int = 0) -> DescriptorStats:
    """Per-subject sums ``[50, 64, 448]``: part centres plus subject and sequence noise, summed per subject."""
    rng = np.random.default_rng(seed)
    centres = np.repeat(rng.uniform(-1, 1, size=(len(PARTS), MOTION + TILT)), PARTS, axis=0)
    groups = ["motion"] * MOTION + ["tilt"] * TILT
    stats = DescriptorStats(ROWS, [f"f{i}" for i in range(MOTION + TILT)], "row-articulation", groups)
    for s in range(SUBJECTS):
        subject = centres + 0.3 * rng.standard_normal(centres.shape)
        # The sum of SEQUENCES noisy sequences, drawn at once: its noise has sqrt(SEQUENCES) times the spread.
        total = SEQUENCES * subject + np.sqrt(SEQUENCES) * 0.5 * rng.standard_normal(centres.shape)
        stats.add(total / SEQUENCES, f"{s:03d}")
    return stats


def test_support_of_100_resamples_under_a_minute() -> None:
    stats = default_sized_stats()
    estimator = HierarchyDiscovery(feature_groups=stats.feature_groups, random_state=0)
    with threadpool_limits(2):
        start = time.perf_counter()
        full = estimator.fit(stats.matrix())
        fit_s = time.perf_counter() - start
        start = time.perf_counter()
        refits = bootstrap_refits(estimator, stats, RESAMPLES, random_state=0)
        refit_s = time.perf_counter() - start
        start = time.perf_counter()
        support = support_from_refits(full.tree_, [r.tree_ for r in refits], range(2, 9), tolerance=1, seed=0)
        count_s = time.perf_counter() - start
    total = refit_s + count_s
    per_resample = total / RESAMPLES
    top = support.cut(6) or []
    print(f"\nsupport, {RESAMPLES} resamples of {SUBJECTS} subjects x {ROWS} rows x {MOTION + TILT} features "
          f"({cpu_name()}, 2 BLAS threads): {total:.2f} s (refits {refit_s:.2f} s, counting {count_s:.3f} s); "
          f"one fit {fit_s * 1000:.0f} ms, a resample {per_resample * 1000:.0f} ms: ratio {per_resample / fit_s:.2f}; "
          f"target {TARGET_S:.0f} s: ratio {total / TARGET_S:.3f}; k=6 boundaries "
          + ", ".join(f"{b.row}: {b.support:.2f}" for b in top))
    assert full.tree_.cut(6) == PARTS
    assert total < TARGET_S
