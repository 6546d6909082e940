"""Two trees side by side over one mean silhouette, their cuts on shared rows between them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.hierarchy._compare import CutComparison, compare_cuts
from workbench.hierarchy._plot import (
    _PALETTE,
    check_image,
    draw_boundary_support,
    draw_tree,
    pyplot,
    resolve_support,
    save_figure,
)
from workbench.hierarchy._presets import PAPER_CUTS
from workbench.hierarchy._support import TreeSupport
from workbench.hierarchy._tree import PartitionTree

_COLOUR_A, _COLOUR_B = "#2b8cff", "#ff4b3e"


def _draw_pair(
    ax: Any,
    image: np.ndarray | None,
    trees: tuple[PartitionTree, PartitionTree],
    comparison: CutComparison,
    supports: tuple[TreeSupport | None, TreeSupport | None],
) -> None:
    """One cut of both trees: A's regions and boundaries on the left half, B's on the right."""
    tree_a, tree_b = trees
    n = tree_a.n_rows
    width = image.shape[1] if image is not None else 8
    if image is not None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(0, width, n, 0), aspect="auto")
    alpha = 0.3 if image is not None else 0.7
    halves = ((0.0, 0.5, tree_a, _COLOUR_A), (0.5, 1.0, tree_b, _COLOUR_B))
    for lo, hi, tree, colour in halves:
        for i, (start, stop) in enumerate(tree.cut_regions(comparison.k)):
            ax.axhspan(start, stop, xmin=lo, xmax=hi, color=_PALETTE[i % len(_PALETTE)], alpha=alpha, lw=0)
            if start > 0:
                ax.plot([lo * width, hi * width], [start, start], color=colour, lw=1.8)
    for row_a, row_b in comparison.shared:  # join shared boundaries across the middle
        ax.plot([0.4 * width, 0.6 * width], [row_a, row_b], color="black", lw=1.2)
    for (lo, _hi, _tree, _colour), found in zip(halves, supports, strict=True):
        items = found.cut(comparison.k) if found is not None else None
        if items:
            draw_boundary_support(ax, items, width * (0.02 if lo == 0.0 else 0.98), "left" if lo == 0.0 else "right")
    ax.axvline(width / 2, color="black", lw=0.4)
    ax.set_title(f"k={comparison.k}\nARI {comparison.ari:.2f}", fontsize=7)
    ax.set_xlim(0, width)
    ax.set_ylim(n, 0)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_tree_comparison(
    tree_a: PartitionTree,
    tree_b: PartitionTree,
    path: str | Path,
    mean_image: np.ndarray | None = None,
    cuts: Sequence[int] = PAPER_CUTS,
    title: str | None = None,
    *,
    support: bool = True,
    tolerance: int = 1,
) -> Path:
    """Draw two trees of one height facing each other, their cuts between them on shared rows (PNG and SVG).

    Tree A's dendrogram is on the left, B's mirrored on the right; each cut panel shows A's regions
    on its left half and B's on its right over the mean silhouette, with boundaries the two share
    (within ``tolerance`` rows) joined across the middle and the ARI of the two cuts on top.

    Args:
        tree_a, tree_b: trees over the same rows.
        path: output file; ``<stem>.png`` and ``<stem>.svg`` are written too.
        mean_image: ``[n_rows, w]`` mean silhouette in [0, 1], or None.
        cuts: region counts reachable in both trees.
        title: figure title (default: both names).
        support: draw each tree's recorded support, if it has some.
        tolerance: rows two boundaries may differ by and still count as shared.
    """
    plt = pyplot()
    comparisons = compare_cuts(tree_a, tree_b, cuts, tolerance)
    check_image(tree_a, mean_image)
    supports = (resolve_support(tree_a, support), resolve_support(tree_b, support))
    ratios = [4.0] + [1.4] * len(comparisons) + [4.0]
    fig, axes = plt.subplots(1, len(ratios), figsize=(1.3 + 0.6 * sum(ratios), 4.5), width_ratios=ratios)
    draw_tree(axes[0], tree_a, supports[0])
    draw_tree(axes[-1], tree_b, supports[1], mirror=True)
    axes[0].set_title(f"A: {tree_a.name or tree_a.tree_id}", fontsize=8, color=_COLOUR_A)
    axes[-1].set_title(f"B: {tree_b.name or tree_b.tree_id}", fontsize=8, color=_COLOUR_B)
    for ax, comparison in zip(axes[1:-1], comparisons, strict=True):
        _draw_pair(ax, mean_image, (tree_a, tree_b), comparison, supports)
    names = f"{tree_a.name or tree_a.tree_id} vs {tree_b.name or tree_b.tree_id}"
    fig.suptitle(title or names, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["plot_tree_comparison"]
