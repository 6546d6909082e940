"""Split arithmetic that needs no tree: nesting checks and rescaling split lists to a stage height."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence

import numpy as np


def _boundaries(split: Sequence[int]) -> list[int]:
    """Inner boundary rows of a split: ``[8, 32, 24] -> [8, 40]``."""
    return [int(b) for b in np.cumsum(split)[:-1]]


def _region_sizes(split: Sequence[int], what: str = "split") -> list[int]:
    """The region heights of ``split`` as ints; empty splits and empty regions raise naming ``what``."""
    sizes = [int(s) for s in split]
    if not sizes:
        raise ValueError(f"{what} is empty; give at least one region height, e.g. [64]")
    if any(s < 1 for s in sizes):
        raise ValueError(f"{what} {sizes} has a region with fewer than 1 row; every height must be >= 1")
    return sizes


def refines(coarse: Sequence[int], fine: Sequence[int]) -> bool:
    """Whether every region of ``coarse`` is a union of consecutive regions of ``fine``."""
    coarse_sizes = _region_sizes(coarse, "coarse split")
    fine_sizes = _region_sizes(fine, "fine split")
    if sum(coarse_sizes) != sum(fine_sizes):
        return False
    return set(_boundaries(coarse_sizes)) <= set(_boundaries(fine_sizes))


def is_nested(splits: Sequence[Sequence[int]]) -> bool:
    """Whether the splits, ordered coarse to fine, each refine the one before."""
    return all(refines(a, b) for a, b in itertools.pairwise(splits))


def _place_boundaries(boundaries: Sequence[int], old: int, new: int) -> list[int]:
    """Map sorted inner boundaries of ``old`` rows to ``new`` rows, keeping them distinct and inside."""
    m = len(boundaries)
    if m > new - 1:
        raise ValueError(
            f"cannot rescale {m + 1} regions to a height of {new} rows: every region needs at least "
            f"one row; use a coarser cut (at most {new} regions) or a taller stage"
        )
    # Round each boundary to the nearest row (halves up, so the result does not depend on numpy's
    # banker's rounding), then push collisions apart: forward keeps a gap of one row from the
    # previous boundary, backward keeps room for the boundaries still to come.
    placed = [int(np.floor(b * new / old + 0.5)) for b in boundaries]
    previous = 0
    for i in range(m):
        placed[i] = max(placed[i], previous + 1)
        previous = placed[i]
    following = new
    for i in range(m - 1, -1, -1):
        placed[i] = min(placed[i], following - 1)
        following = placed[i]
    return placed


def _sizes(boundaries: Sequence[int], height: int) -> list[int]:
    edges = [0, *boundaries, height]
    return [b - a for a, b in itertools.pairwise(edges)]


def rescale_split(split: Sequence[int], height: int) -> list[int]:
    """Map a split list to ``height`` rows, keeping its region count and at least one row per region.

    Example: ``rescale_split([8, 32, 16, 8], 32) == [4, 16, 8, 4]``.
    """
    sizes = _region_sizes(split)
    if height < 1:
        raise ValueError(f"target height must be >= 1, got {height}")
    return _sizes(_place_boundaries(_boundaries(sizes), sum(sizes), height), height)


def rescale_splits(splits: Sequence[Sequence[int]], height: int) -> list[list[int]]:
    """Map nested splits (row heights, coarse to fine) to ``height`` rows together, so they stay nested.

    Every boundary is placed once (the finest split holds them all), so a coarse region stays a union
    of consecutive fine regions after rescaling.

    Example: ``rescale_splits([[40, 24], [8, 32, 16, 8]], 32) == [[20, 12], [4, 16, 8, 4]]``.
    """
    if not splits:
        return []
    checked = [_region_sizes(s, f"split {i}") for i, s in enumerate(splits)]
    total = sum(checked[0])
    for i, s in enumerate(checked):
        if sum(s) != total:
            raise ValueError(
                f"split {i} {s} sums to {sum(s)} rows, split 0 to {total}; all splits must cover the same rows"
            )
    if not is_nested(checked):
        raise ValueError(f"splits {checked} are not nested: each split must refine the one before (coarse to fine)")
    if height < 1:
        raise ValueError(f"target height must be >= 1, got {height}")
    union = sorted({b for c in checked for b in _boundaries(c)})
    mapping = dict(zip(union, _place_boundaries(union, total, height), strict=True))
    return [_sizes([mapping[b] for b in _boundaries(s)], height) for s in checked]


def rescale_cuts(cuts: Sequence[Sequence[int]], height: int) -> list[list[int]]:
    """Deprecated name of ``rescale_splits`` (it takes split lists, and cuts are region counts)."""
    warnings.warn("workbench.hierarchy.rescale_cuts is renamed rescale_splits (it rescales split lists); "
                  "call rescale_splits", DeprecationWarning, stacklevel=2)
    return rescale_splits(cuts, height)
