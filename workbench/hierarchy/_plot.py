"""Dendrogram figures: rows top to bottom like the image, beside the mean silhouette, its cuts and evidence.

Every figure is written as PNG and SVG (``save_figure``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from workbench.hierarchy._evidence import RowEvidence
from workbench.hierarchy._presets import PAPER_CUTS
from workbench.hierarchy._support import BoundarySupport, TreeSupport, read_support
from workbench.hierarchy._tree import Node, PartitionTree

_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_BLOCK_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_SUPPORT_CMAP = "RdYlGn"
# Merges labelled with their support, highest first; the rest get a coloured marker only.
LABELLED_MERGES = 15


class MeanFrame:
    """Running mean frame ``[h, w]`` in [0, 1] over every frame of the sequences added."""

    def __init__(self) -> None:
        self.total: np.ndarray | None = None
        self.frames = 0

    def add(self, seq: np.ndarray) -> None:
        """Add one sequence ``[frames, h, w]`` (uint8 0..255 or float 0..1); empty ones are ignored."""
        arr = np.asarray(seq)
        if arr.ndim != 3 or arr.shape[0] == 0:
            return
        scale = 255.0 if arr.dtype == np.uint8 else 1.0
        part = arr.sum(axis=0, dtype=np.float64) / scale
        if self.total is None:
            self.total = part
        elif part.shape != self.total.shape:
            raise ValueError(f"sequences differ in frame size: {list(self.total.shape)} and {list(part.shape)}")
        else:
            self.total += part
        self.frames += arr.shape[0]

    def value(self) -> np.ndarray:
        """The mean frame so far."""
        if self.total is None:
            raise ValueError("no frames to average; the data holds no non-empty sequence")
        return self.total / self.frames


def mean_silhouette(sequences: Iterable[np.ndarray]) -> np.ndarray:
    """Mean frame ``[h, w]`` in [0, 1] over every frame of every sequence (streamed)."""
    mean = MeanFrame()
    for seq in sequences:
        mean.add(seq)
    return mean.value()


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` and, beside it, as ``<stem>.png`` and ``<stem>.svg``; returns ``path``."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    for target in dict.fromkeys([out, out.with_suffix(".png"), out.with_suffix(".svg")]):
        fig.savefig(target, dpi=150)
    pyplot().close(fig)
    return out


def _centre(node: Node) -> float:
    return (node[0] + node[1]) / 2.0


def draw_tree(ax: Any, tree: PartitionTree, support: TreeSupport | None = None, mirror: bool = False) -> None:
    """Elbow dendrogram: merge height on x, rows on y (row 0 at the top); root on the left unless ``mirror``.

    With ``support`` each merge gets a marker coloured by its support and the ``LABELLED_MERGES``
    highest merges a percentage.
    """
    for node in tree.internal_nodes:
        x = tree.height(node)
        kids = tree.children(node)
        ax.plot([x, x], [_centre(kids[0]), _centre(kids[-1])], color="black", lw=0.8)
        for kid in kids:
            ax.plot([tree.height(kid), x], [_centre(kid), _centre(kid)], color="black", lw=0.8)
    top = max((tree.height(n) for n in tree.internal_nodes), default=1.0) or 1.0
    ax.plot([top, top * 1.04], [tree.n_rows / 2.0] * 2, color="black", lw=0.8)
    if support is not None:
        _draw_support(ax, tree, support, mirror)
    ax.set_ylim(tree.n_rows, 0)
    ax.set_xlim((0, top * 1.05) if mirror else (top * 1.05, 0))
    ax.set_xlabel("merge height")
    if mirror:
        ax.yaxis.tick_right()
        ax.yaxis.set_label_position("right")
    ax.set_ylabel("row")
    ax.set_yticks(range(0, tree.n_rows + 1, max(1, tree.n_rows // 8)))


def _draw_support(ax: Any, tree: PartitionTree, support: TreeSupport, mirror: bool) -> None:
    cmap = pyplot().get_cmap(_SUPPORT_CMAP)
    nodes = [n for n in tree.internal_nodes if n in support.nodes]
    xs = [tree.height(n) for n in nodes]
    ys = [_centre(n) for n in nodes]
    values = [support.node(n) for n in nodes]
    size = 14 if tree.n_rows <= 32 else 9
    ax.scatter(xs, ys, c=values, cmap=cmap, vmin=0.0, vmax=1.0, s=size, zorder=3, edgecolors="black", linewidths=0.3)
    for x, y, value in list(zip(xs, ys, values, strict=True))[:LABELLED_MERGES]:
        ax.annotate(f"{100 * value:.0f}", (x, y), xytext=(3 if mirror else -3, 2), textcoords="offset points",
                    ha="left" if mirror else "right", va="bottom", fontsize=5, zorder=4)
    ax.text(0.02 if not mirror else 0.98, 0.01, f"support: % of {support.n_resamples} resamples",
            transform=ax.transAxes, fontsize=5, ha="left" if not mirror else "right", va="bottom")


def draw_boundary_support(ax: Any, items: Sequence[BoundarySupport], x: float, ha: str) -> None:
    """Write each boundary's support (same row; within the tolerance in brackets) at ``x``."""
    for b in items:  # just above the boundary line, so the line stays visible
        ax.text(x, b.row - 0.3, f"{b.support:.2f}" + (f" ({b.near:.2f})" if b.near != b.support else ""),
                fontsize=4.5, ha=ha, va="bottom", zorder=5,
                bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.75})


def _draw_cut(ax: Any, image: np.ndarray | None, tree: PartitionTree, k: int, support: TreeSupport | None) -> None:
    width = image.shape[1] if image is not None else 8
    if image is not None:
        ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(0, width, tree.n_rows, 0), aspect="auto")
    for i, (start, stop) in enumerate(tree.cut_regions(k)):
        ax.axhspan(start, stop, color=_PALETTE[i % len(_PALETTE)], alpha=0.35 if image is not None else 0.8, lw=0)
        ax.axhline(start, color="white" if image is not None else "black", lw=0.6)
    items = support.cut(k) if support is not None else None
    if items:
        draw_boundary_support(ax, items, width * 0.98, "right")
    ax.set_title(f"k={k}\n{wrap_cut(tree.cut(k))}", fontsize=6)
    ax.set_xlim(0, width)
    ax.set_xticks([])
    ax.set_ylim(tree.n_rows, 0)
    ax.set_yticks([])


def wrap_cut(cut: Sequence[int], width: int = 14) -> str:
    """A cut's heights as text, broken into lines of about ``width`` characters to fit a narrow panel."""
    lines, line = [], ""
    for i, h in enumerate(cut):
        item = ("[" if i == 0 else "") + str(h) + ("]" if i == len(cut) - 1 else ",")
        if line and len(line) + len(item) + 1 > width:
            lines.append(line)
            line = item
        else:
            line = f"{line} {item}" if line else item
    return "\n".join([*lines, line])


def _boundary_weights(tree: PartitionTree, cuts: Sequence[int]) -> dict[int, float]:
    """Line width per boundary row of the finest cut: thicker where a coarser cut already has it."""
    order = sorted(cuts)
    widths: dict[int, float] = {}
    for rank, k in enumerate(order):
        for start, _ in tree.cut_regions(k)[1:]:
            widths.setdefault(start, max(0.5, 1.6 - 0.35 * rank))
    return widths


def _draw_distances(ax: Any, evidence: RowEvidence, tree: PartitionTree, cuts: Sequence[int]) -> None:
    n = evidence.n_rows
    ax.imshow(evidence.distances, cmap="viridis", extent=(0, n, n, 0), aspect="auto", interpolation="nearest")
    for row, lw in _boundary_weights(tree, cuts).items():
        ax.axhline(row, color="white", lw=lw)
        ax.axvline(row, color="white", lw=lw)
    ax.set_title(f"row distances ({evidence.metric})\ndark = alike", fontsize=7)
    ax.set_xlabel("row", fontsize=7)
    ax.set_ylim(n, 0)
    ax.set_yticks([])
    ax.tick_params(labelsize=6)


def _draw_steps(ax: Any, evidence: RowEvidence, tree: PartitionTree, cuts: Sequence[int]) -> None:
    n = evidence.n_rows
    edges = np.arange(1, n)  # the step of row r sits on the line between rows r and r + 1
    left = np.zeros(n - 1)
    for i, block in enumerate(evidence.blocks):
        ax.barh(edges, evidence.steps[:, i], left=left, height=0.9, color=_BLOCK_COLOURS[i % len(_BLOCK_COLOURS)],
                label=block, lw=0)
        left += evidence.steps[:, i]
    for row, lw in _boundary_weights(tree, cuts).items():
        ax.axhline(row, color="grey", lw=lw * 0.6, ls="--", zorder=0)
    ax.set_ylim(n, 0)
    ax.set_yticks([])
    ax.set_xlim(0, max(float(left.max()), 1e-12) * 1.05)
    ax.set_title("step to the next\nrow (squared)", fontsize=7)
    ax.tick_params(labelsize=5)
    ax.legend(fontsize=5, loc="upper center", bbox_to_anchor=(0.5, -0.05), frameon=False, ncol=2)


def resolve_support(tree: PartitionTree, support: TreeSupport | bool) -> TreeSupport | None:
    """``support`` itself, the tree's recorded support (``True``; ``None`` when it has none), or ``None``."""
    if isinstance(support, TreeSupport):
        return support
    return read_support(tree) if support else None


def check_image(tree: PartitionTree, mean_image: np.ndarray | None) -> None:
    """Raise when the silhouette and the tree differ in height."""
    if mean_image is not None and mean_image.shape[0] != tree.n_rows:
        raise ValueError(
            f"tree {tree.name or tree.tree_id!r} has {tree.n_rows} rows but the data is {mean_image.shape[0]} rows "
            "high; use a tree of the data's height (e.g. uniform-64 for 64-row silhouettes)"
        )


def plot_dendrogram(
    tree: PartitionTree,
    path: str | Path,
    mean_image: np.ndarray | None = None,
    cuts: Sequence[int] = PAPER_CUTS,
    title: str | None = None,
    *,
    support: TreeSupport | bool = True,
    evidence: RowEvidence | None = None,
) -> Path:
    """Draw the tree's dendrogram at ``cuts``, with bootstrap support when it has some, as PNG and SVG.

    Panels, left to right: the dendrogram (each merge coloured by its support), the mean silhouette
    (optional), one panel per cut (boundaries labelled with their support when it was measured for
    that cut), and with ``evidence`` the row-distance matrix and each block's share of every row step.
    Needs no data: without ``mean_image`` and ``evidence`` the figure is the tree and its cuts.

    Example: ``plot_dendrogram(load_tree("hierarchies/mine.json"), "figures/mine.png", cuts=[2, 4, 6])``.

    Args:
        tree: the hierarchy to draw.
        path: output file (``.png``, ``.svg`` or ``.pdf``); ``<stem>.png`` and ``<stem>.svg`` are written too.
        mean_image: ``[n_rows, w]`` mean silhouette in [0, 1], or None.
        cuts: region counts to colour, one panel each.
        title: figure title (default: the tree's name and id).
        support: ``True`` draws the support recorded in the tree (if any), ``False`` none, or a ``TreeSupport``.
        evidence: ``row_evidence(stats)`` of the data, or None to leave the evidence panels out.
    """
    plt = pyplot()
    check_image(tree, mean_image)
    if evidence is not None and evidence.n_rows != tree.n_rows:
        raise ValueError(f"evidence covers {evidence.n_rows} rows, tree {tree.name or tree.tree_id!r} {tree.n_rows}")
    for k in cuts:
        tree.cut_regions(k)  # fail before drawing when a cut is unreachable
    found = resolve_support(tree, support)
    kinds = ["tree"] + (["image"] if mean_image is not None else []) + ["cut"] * len(cuts)
    kinds += ["distances", "steps"] if evidence is not None else []
    widths = {"tree": 4.0, "image": 1.2, "cut": 1.2, "distances": 3.6, "steps": 1.6}
    ratios = [widths[kind] for kind in kinds]
    fig, axes = plt.subplots(1, len(kinds), figsize=(1.3 + 0.6 * sum(ratios), 4.5), width_ratios=ratios)
    axes = np.atleast_1d(axes)
    cut_iter = iter(cuts)
    for ax, kind in zip(axes, kinds, strict=True):
        if kind == "tree":
            draw_tree(ax, tree, found)
        elif kind == "image":
            assert mean_image is not None
            ax.imshow(mean_image, cmap="gray", vmin=0, vmax=1, extent=(0, mean_image.shape[1], tree.n_rows, 0),
                      aspect="auto")
            ax.set_title("mean\nsilhouette", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
        elif kind == "cut":
            _draw_cut(ax, mean_image, tree, next(cut_iter), found)
        elif kind == "distances":
            assert evidence is not None
            _draw_distances(ax, evidence, tree, cuts)
        else:
            assert evidence is not None
            _draw_steps(ax, evidence, tree, cuts)
    fig.suptitle(title or f"{tree.name or 'tree'} ({tree.tree_id})", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


__all__ = ["MeanFrame", "check_image", "draw_tree", "mean_silhouette", "plot_dendrogram", "resolve_support", "save_figure"]
