"""Rescaling split lists, one or nested, to a stage height."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.hierarchy import is_nested, preset_tree, refines, rescale_cuts, rescale_split, rescale_splits


def test_paper_casia_cuts_map_to_the_gait3d_style_32_rows() -> None:
    assert rescale_split([8, 32, 16, 8], 32) == [4, 16, 8, 4]
    assert rescale_splits([[64], [40, 24], [8, 32, 16, 8]], 32) == [[32], [20, 12], [4, 16, 8, 4]]


def test_every_region_keeps_a_row_when_squeezed() -> None:
    assert rescale_split([1, 1, 60, 1, 1], 5) == [1, 1, 1, 1, 1]
    out = rescale_split([30, 1, 1, 32], 8)
    assert sum(out) == 8 and min(out) >= 1 and len(out) == 4


def test_more_regions_than_rows_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="cannot rescale 4 regions to a height of 3 rows"):
        rescale_split([8, 32, 16, 8], 3)


def test_rescaled_random_tree_cuts_stay_nested_sum_and_positive() -> None:
    rng = np.random.default_rng(0)
    tree = preset_tree("casia-b-paper")
    for _ in range(50):
        ks = sorted(rng.choice(np.arange(1, 17), size=4, replace=False).tolist())
        height = int(rng.integers(16, 70))
        splits = rescale_splits(tree.cuts(ks), height)
        assert is_nested(splits)
        assert all(sum(s) == height and min(s) >= 1 for s in splits)
        assert [len(s) for s in splits] == ks


def test_non_nested_cuts_are_rejected() -> None:
    assert not refines([40, 24], [32, 32])
    with pytest.raises(ValueError, match="not nested"):
        rescale_splits([[40, 24], [32, 32]], 16)


def test_the_old_name_still_rescales_and_says_it_is_deprecated() -> None:
    with pytest.warns(DeprecationWarning, match="renamed rescale_splits"):
        assert rescale_cuts([[40, 24], [8, 32, 16, 8]], 32) == [[20, 12], [4, 16, 8, 4]]
