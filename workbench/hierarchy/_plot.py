"""Dendrogram figures: rows top to bottom like the image, beside the mean silhouette and its cuts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.hierarchy._tree import Node, PartitionTree

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


def mean_silhouette(sequences: Iterable[np.ndarray]) -> np.ndarray:
    """Mean frame ``[h, w]`` in [0, 1] over every frame of every sequence (streamed)."""
    total: np.ndarray | None = None
    frames = 0
    for seq in sequences:
        arr = np.asarray(seq)
        if arr.ndim != 3 or arr.shape[0] == 0:
            continue
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
        part = arr.sum(axis=0, dtype=np.float64) / scale
        if total is None:
            total = part
        elif part.shape != total.shape:
            raise ValueError(f"sequences differ in frame size: {list(total.shape)} and {list(part.shape)}")
        else:
            total += part
        frames += arr.shape[0]
    if total is None:
        raise ValueError("no frames to average; the data holds no non-empty sequence")
    return total / frames


def _draw_tree(ax: Any, tree: PartitionTree) -> None:
    """Elbow dendrogram: merge height on x, rows on y (row 0 at the top)."""
    def centre(node: Node) -> float:
        return (node[0] + node[1]) / 2.0

    for node in tree.internal_nodes:
        x = tree.height(node)
        kids = tree.children(node)
        ax.plot([x, x], [centre(kids[0]), centre(kids[-1])], color="black", lw=0.8)
        for kid in kids:
            ax.plot([tree.height(kid), x], [centre(kid), centre(kid)], color="black", lw=0.8)
    top = max((tree.height(n) for n in tree.internal_nodes), default=1.0)
    ax.plot([top, top * 1.04], [tree.n_rows / 2.0] * 2, color="black", lw=0.8)
    ax.set_ylim(tree.n_rows, 0)
    ax.set_xlim(top * 1.05, 0)
    ax.set_xlabel("merge height")
    ax.set_ylabel("row")
    ax.set_yticks(range(0, tree.n_rows + 1, max(1, tree.n_rows // 8)))


def _draw_cut(ax: Any, image: np.ndarray | None, tree: PartitionTree, k: int) -> None:
    width = image.shape[1] if image is not None else 8
    if image is not None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(0, width, tree.n_rows, 0), aspect="auto")
    for i, (start, stop) in enumerate(tree.cut_regions(k)):
        ax.axhspan(start, stop, color=_PALETTE[i % len(_PALETTE)], alpha=0.35 if image is not None else 0.8, lw=0)
        ax.axhline(start, color="white" if image is not None else "black", lw=0.6)
    ax.set_title(f"k={k}\n{tree.cut(k)}", fontsize=7)
    ax.set_xticks([])
    ax.set_ylim(tree.n_rows, 0)
    ax.set_yticks([])


def plot_dendrogram(
    tree: PartitionTree,
    path: str | Path,
    mean_image: np.ndarray | None = None,
    cuts: Sequence[int] = (2, 4),
    title: str | None = None,
) -> Path:
    """Write the tree's dendrogram, the mean silhouette and one coloured panel per cut to ``path``.

    Args:
        tree: the hierarchy to draw.
        path: output file; the suffix (``.png``, ``.svg``, ``.pdf``) picks the format.
        mean_image: ``[n_rows, w]`` mean silhouette in [0, 1], or None to draw the tree alone.
        cuts: region counts to colour, one panel each.
        title: figure title (default: the tree's name and id).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if mean_image is not None and mean_image.shape[0] != tree.n_rows:
        raise ValueError(
            f"tree {tree.name or tree.tree_id!r} has {tree.n_rows} rows but the data is {mean_image.shape[0]} rows "
            "high; use a tree of the data's height (e.g. uniform-64 for 64-row silhouettes)"
        )
    for k in cuts:
        tree.cut_regions(k)  # fail before drawing when a cut is unreachable
    panels = 1 + (1 if mean_image is not None else 0) + len(cuts)
    ratios = [4.0] + [1.2] * (panels - 1)
    fig, axes = plt.subplots(1, panels, figsize=(2.2 + 1.3 * (panels - 1) + 2.5, 4.5), width_ratios=ratios)
    axes = np.atleast_1d(axes)
    _draw_tree(axes[0], tree)
    offset = 1
    if mean_image is not None:
        axes[1].imshow(mean_image, cmap="gray", vmin=0, vmax=1, extent=(0, mean_image.shape[1], tree.n_rows, 0), aspect="auto")
        axes[1].set_title("mean\nsilhouette", fontsize=7)
        axes[1].set_xticks([])
        offset = 2
    for ax, k in zip(axes[offset:], cuts, strict=True):
        _draw_cut(ax, mean_image, tree, k)
    fig.suptitle(title or f"{tree.name or 'tree'} ({tree.tree_id})", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=150)
    plt.close(fig)
    return out


__all__ = ["mean_silhouette", "plot_dendrogram"]
