"""Dendrogram figures with support, evidence and comparison render as PNG and SVG at 32 and 64 rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from _planted import planted_stats

from workbench.hierarchy import (
    HierarchyDiscovery,
    PartitionTree,
    TreeSupport,
    bootstrap_support,
    plot_dendrogram,
    plot_tree_comparison,
    preset_tree,
    row_evidence,
)
from workbench.hierarchy._support import BoundarySupport


def _written(path: Path) -> None:
    png, svg = path.with_suffix(".png"), path.with_suffix(".svg")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5_000
    assert svg.read_text().lstrip().startswith("<?xml")


def _fake_support(tree: PartitionTree, ks: list[int]) -> TreeSupport:
    """Every node and boundary gets a made-up support (a preset has no data to resample)."""
    nodes = {n: (i / len(tree.internal_nodes), min(1.0, 0.2 + i / len(tree.internal_nodes)))
             for i, n in enumerate(tree.internal_nodes)}
    cuts = {k: [BoundarySupport(k, start, 0.5, 0.75) for start, _ in tree.cut_regions(k)[1:]] for k in ks}
    return TreeSupport(10, 1, 0, nodes, cuts)


@pytest.mark.parametrize("n_rows", [32, 64])
def test_discovered_tree_with_support_and_evidence(n_rows: int, tmp_path: Path) -> None:
    stats = planted_stats(n_rows=n_rows, subjects=4)
    est = HierarchyDiscovery(feature_groups=stats.feature_groups, random_state=0).fit(stats.matrix())
    support = bootstrap_support(est, stats, n_resamples=4, ks=[2, 3, 4])
    tree = est.tree_.with_metadata(name=f"planted-{n_rows}", provenance={"support": support.as_dict()})
    image = np.random.default_rng(0).uniform(size=(n_rows, n_rows * 11 // 16))
    out = plot_dendrogram(tree, tmp_path / "full.png", image, cuts=[2, 4, 6], evidence=row_evidence(stats, est))
    assert out == tmp_path / "full.png"
    _written(out)
    # without data: the tree and its cuts only, support read from the tree
    _written(plot_dendrogram(tree, tmp_path / "alone.svg", cuts=[2, 3]))
    _written(plot_dendrogram(tree, tmp_path / "plain.png", cuts=[2], support=False))


@pytest.mark.parametrize("name", ["oumvlp-paper", "casia-b-paper"])
def test_multiway_merges_render_with_support(name: str, tmp_path: Path) -> None:
    tree = preset_tree(name)
    ks = tree.reachable_ks()[1:3]
    _written(plot_dendrogram(tree, tmp_path / f"{name}.png", cuts=ks, support=_fake_support(tree, ks)))


def test_comparison_figure(tmp_path: Path) -> None:
    paper, uniform = preset_tree("casia-b-paper"), preset_tree("uniform-64")
    paper = paper.with_metadata(provenance={"support": _fake_support(paper, [2, 4]).as_dict()})
    image = np.random.default_rng(1).uniform(size=(64, 44))
    _written(plot_tree_comparison(paper, uniform, tmp_path / "pair.png", image, cuts=[2, 4]))
    _written(plot_tree_comparison(preset_tree("uniform-32"), preset_tree("oumvlp-paper"), tmp_path / "p32.svg",
                                  cuts=[3, 5]))
    with pytest.raises(ValueError, match="has 64 rows but the data is 32 rows high"):
        plot_tree_comparison(paper, uniform, tmp_path / "bad.png", image[:32], cuts=[2])


def test_evidence_of_another_height_is_refused(tmp_path: Path) -> None:
    stats = planted_stats(n_rows=32, subjects=2)
    with pytest.raises(ValueError, match="evidence covers 32 rows"):
        plot_dendrogram(preset_tree("uniform-64"), tmp_path / "x.png", evidence=row_evidence(stats))
