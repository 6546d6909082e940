"""Planted descriptor sums shared by the support, evidence and figure tests."""

from __future__ import annotations

import numpy as np

from workbench.hierarchy import DescriptorStats

STRONG = 24  # the planted boundary at 64 rows


def planted_stats(n_rows: int = 64, subjects: int = 12, seed: int = 0) -> DescriptorStats:
    """Two blocks of rows with far-apart centres meeting at ``STRONG * n_rows // 64``.

    Inside each block every row has the block's centre plus noise drawn afresh for every subject,
    so nothing but chance structures the rows within a block: the lower block is the ambiguous region.
    Two feature blocks (``shape`` and ``motion``); only ``motion`` separates the blocks.
    """
    rng = np.random.default_rng(seed)
    edge = STRONG * n_rows // 64
    centres = np.zeros((n_rows, 6))
    centres[:edge, 3:] = 4.0
    stats = DescriptorStats(n_rows, [f"f{i}" for i in range(6)], "planted", ["shape"] * 3 + ["motion"] * 3)
    for s in range(subjects):
        for _ in range(2):
            stats.add(centres + rng.normal(size=(n_rows, 6)), f"s{s:02d}")
    return stats
