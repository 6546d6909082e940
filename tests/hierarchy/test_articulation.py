"""``row-articulation``: sub-pixel edges, edge tilts, block weights and joints on a toy limb."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.hierarchy import (
    DescriptorStats,
    HierarchyDiscovery,
    RowArticulation,
    create_descriptor,
    edge_tilts,
    subpixel_edges,
)


def coverage_row(left: float, right: float, w: int = 32) -> np.ndarray:
    """Area coverage ``[w]`` of the span ``[left, right)`` (pixel ``i`` covers ``[i, i + 1)``)."""
    cols = np.arange(w)
    return np.clip(np.minimum(cols + 1, right) - np.maximum(cols, left), 0.0, 1.0)


def limb(frames: int = 48, h: int = 48, w: int = 48, knee: int = 30, hip: int = 14) -> np.ndarray:
    """A still trunk (rows < hip) over a thigh and a shin that swing with different angles, float [t, h, w]."""
    t = np.arange(frames)
    thigh = 0.5 * np.sin(2 * np.pi * t / 16)
    shin = thigh + 0.6 * np.sin(2 * np.pi * t / 16 - 1.3)
    seq = np.zeros((frames, h, w))
    for i in range(frames):
        for r in range(h):
            if r < hip:
                centre, half = w / 2, 6.0
            elif r < knee:
                centre, half = w / 2 + (r - hip) * np.tan(thigh[i]), 3.0
            else:
                centre, half = w / 2 + (knee - hip) * np.tan(thigh[i]) + (r - knee) * np.tan(shin[i]), 3.0
            seq[i, r] = coverage_row(centre - half, centre + half, w)
    return seq


def test_subpixel_edges_recover_the_true_edge_positions() -> None:
    frame = np.stack([coverage_row(10.3, 21.6), coverage_row(4.0, 9.75), np.zeros(32)])[None]
    left, right, present = subpixel_edges(frame)
    assert present[0].tolist() == [True, True, False]
    assert np.allclose(left[0, :2], [10.3, 4.0]) and np.allclose(right[0, :2], [21.6, 9.75])
    assert left[0, 2] == right[0, 2] == 0.0


def test_rows_of_one_segment_share_their_tilt() -> None:
    tilts = edge_tilts(limb())  # [2, t, h]
    assert tilts.shape == (2, 48, 48)
    # Inside the thigh (rows 16-28) every row leans by the same amount in every frame, not in the trunk.
    thigh = tilts[:, :, 16:29]
    assert np.allclose(thigh, thigh[:, :, :1], atol=0.02)
    assert np.abs(thigh).max() > 0.3 and np.abs(tilts[:, :, 2:12]).max() < 1e-9
    shin = tilts[:, :, 32:46]
    assert not np.allclose(shin[:, :, 0], thigh[:, :, 0], atol=0.1)
    # The first and last rows have no neighbour on one side.
    assert np.all(tilts[:, :, 0] == 0) and np.all(tilts[:, :, -1] == 0)


def test_descriptor_labels_its_two_blocks() -> None:
    d = RowArticulation(n_rows=24)
    x = d.describe((limb() * 255).astype(np.uint8))
    names, groups = d.feature_names(), d.feature_groups()
    assert x.shape == (24, 7 * 24) == (24, len(names)) and len(groups) == len(names)
    assert groups.count("motion") == 5 * 24 and groups.count("tilt") == 2 * 24
    assert names[5 * 24] == "left-tilt:row0" and groups[5 * 24] == "tilt"
    stats = d.accumulate([(limb() * 255).astype(np.uint8)], ["s1"])
    assert stats.feature_groups == groups
    with pytest.raises(ValueError, match="once n_rows is set"):
        RowArticulation().feature_groups()


def test_tilt_block_finds_the_knee_where_the_width_does_not_change() -> None:
    x = create_descriptor("row-articulation", n_rows=48).describe(limb())
    groups = RowArticulation(n_rows=48).feature_groups()
    tree = HierarchyDiscovery(feature_groups=groups).fit(x).tree_
    boundaries = np.cumsum(tree.cut(3))[:-1]
    assert abs(boundaries[0] - 14) <= 1 and abs(boundaries[1] - 30) <= 2, tree.cut(3)
    # Motion coherence alone places its second boundary far from the knee on the same limb.
    motion = HierarchyDiscovery().fit(create_descriptor("row-coherence", n_rows=48).describe(limb())).tree_
    assert abs(np.cumsum(motion.cut(3))[1] - 30) > 4, motion.cut(3)


def test_feature_groups_give_every_block_equal_weight() -> None:
    rng = np.random.default_rng(0)
    step = np.repeat([0.0, 1.0], [10, 54])[:, None]  # one informative column: a boundary at row 10
    noise = rng.normal(size=(64, 40))  # a wide block of unstructured columns
    x = np.concatenate([step, noise, np.ones((64, 3))], axis=1)  # constant columns count for nothing
    groups = ["step"] + ["noise"] * 43
    weighted = HierarchyDiscovery(feature_groups=groups)
    z = weighted.transform_rows(x)
    assert np.isclose(z[:, :1].var(axis=0).sum(), 1.0) and np.isclose(z[:, 1:].var(axis=0).sum(), 1.0)
    assert weighted.fit(x).tree_.cut(2) == [10, 54]
    assert HierarchyDiscovery().fit(x).tree_.cut(2) != [10, 54]
    assert weighted.tree_.provenance["feature_groups"] == ["step", "noise"]
    with pytest.raises(ValueError, match="feature_groups has 2 labels but X has 44 features"):
        HierarchyDiscovery(feature_groups=["a", "b"]).fit(x)


def test_stats_check_and_merge_feature_groups() -> None:
    with pytest.raises(ValueError, match="one block label per feature"):
        DescriptorStats(4, ["a", "b"], feature_groups=["x"])
    a = DescriptorStats(4, ["a", "b"], feature_groups=["x", "y"])
    b = DescriptorStats(4, ["a", "b"], feature_groups=["x", "x"])
    with pytest.raises(ValueError, match="feature groups"):
        a.merge(b)
