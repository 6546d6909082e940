"""Two trees over the same rows, cut by cut: shared and separate boundaries, distances, ARI."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sklearn.metrics import adjusted_rand_score

from workbench.hierarchy._scores import boundary_distances
from workbench.hierarchy._tree import PartitionTree


@dataclass(frozen=True)
class CutComparison:
    """Where the cuts of two trees at ``k`` regions agree and differ.

    ``a_to_b`` is the mean row distance from each of A's boundaries to the nearest of B's, ``b_to_a``
    the reverse; ``shared`` pairs boundaries within ``tolerance`` rows (A's row, B's row), matched
    nearest first; ``only_a`` / ``only_b`` are the rest.
    """

    k: int
    cut_a: list[int]
    cut_b: list[int]
    ari: float
    a_to_b: float
    b_to_a: float
    tolerance: int
    shared: list[tuple[int, int]]
    only_a: list[int]
    only_b: list[int]

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for printing and logging."""
        return asdict(self)


def _inner(tree: PartitionTree, k: int) -> list[int]:
    return [start for start, _ in tree.cut_regions(k)][1:]


def _pair(a: list[int], b: list[int], tolerance: int) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of boundaries within ``tolerance`` rows, closest pairs first."""
    candidates = sorted((abs(x - y), x, y) for x in a for y in b if abs(x - y) <= tolerance)
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for _, x, y in candidates:
        if x not in used_a and y not in used_b:
            used_a.add(x)
            used_b.add(y)
            pairs.append((x, y))
    return sorted(pairs)


def compare_cuts(
    tree_a: PartitionTree, tree_b: PartitionTree, ks: Sequence[int], tolerance: int = 1
) -> list[CutComparison]:
    """Compare the cuts of two trees of the same height at each ``k`` of ``ks``.

    Example: ``compare_cuts(load_tree("synthetic-default"), load_tree("casia-b-paper"), [2, 4])``.

    Args:
        tree_a, tree_b: trees over the same number of rows.
        ks: region counts; each must be reachable in both trees.
        tolerance: rows two boundaries may differ by and still count as shared.
    """
    if tree_a.n_rows != tree_b.n_rows:
        raise ValueError(
            f"trees {tree_a.name or tree_a.tree_id!r} ({tree_a.n_rows} rows) and {tree_b.name or tree_b.tree_id!r} "
            f"({tree_b.n_rows} rows) differ in height; compare trees of one height (e.g. uniform-{tree_a.n_rows})"
        )
    out = []
    for k in ks:
        regions_a, regions_b = tree_a.cut(k), tree_b.cut(k)  # each raises with the reachable ks
        inner_a, inner_b = _inner(tree_a, k), _inner(tree_b, k)
        b_to_a, a_to_b = boundary_distances(inner_a, inner_b)
        shared = _pair(inner_a, inner_b, tolerance)
        ari = float(adjusted_rand_score(tree_a.labels(k), tree_b.labels(k)))
        out.append(CutComparison(
            int(k), regions_a, regions_b, ari, a_to_b, b_to_a, int(tolerance), shared,
            [x for x in inner_a if x not in {p[0] for p in shared}],
            [y for y in inner_b if y not in {p[1] for p in shared}],
        ))
    return out


__all__ = ["CutComparison", "compare_cuts"]
