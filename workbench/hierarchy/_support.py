"""Per-node bootstrap support: how often each interval of a tree comes back when subjects are resampled.

For every internal node ``(start, stop)`` of a tree fitted on all subjects, support is the fraction
of subject resamples (with replacement) whose refitted tree has the same interval as an internal
node; ``near`` relaxes "same" to both ends within ``tolerance`` rows. For the cut at ``k`` regions,
a boundary's support is the fraction of resamples whose own ``k``-region cut has a boundary at that
row (``near``: within ``tolerance`` rows). Resamples are weighted sums of the per-subject descriptor
sums (``DescriptorStats``), so no resample reads the data again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench.hierarchy._tree import Node, PartitionTree

if TYPE_CHECKING:
    from workbench.hierarchy._discovery import HierarchyDiscovery
    from workbench.hierarchy._stats import DescriptorStats

SUPPORT_KEY = "support"


def bootstrap_refits(
    estimator: HierarchyDiscovery,
    stats: DescriptorStats,
    n_resamples: int,
    random_state: int | None = None,
) -> list[HierarchyDiscovery]:
    """Clones of ``estimator`` fitted on ``n_resamples`` subject resamples of ``stats``.

    Resample ``i`` is the ``i``-th draw of ``np.random.default_rng(random_state)`` (default: the
    estimator's ``random_state``), so stability and support computed from one list share resamples.
    """
    from sklearn.base import clone

    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    seed = estimator.random_state if random_state is None else random_state
    rng = np.random.default_rng(seed)
    return [clone(estimator).fit(stats.matrix(stats.bootstrap_weights(rng))) for _ in range(n_resamples)]


@dataclass(frozen=True)
class BoundarySupport:
    """Support of one boundary row of the cut at ``k`` regions."""

    k: int
    row: int
    support: float
    near: float


@dataclass(frozen=True)
class TreeSupport:
    """Bootstrap support of a tree's internal nodes and of the boundaries of some of its cuts.

    ``nodes`` maps each internal node to ``(support, near)``; ``boundaries`` maps a region count to
    its cut's boundaries, top first.
    """

    n_resamples: int
    tolerance: int
    seed: int | None
    nodes: dict[Node, tuple[float, float]]
    boundaries: dict[int, list[BoundarySupport]]

    def node(self, node: Node) -> float:
        """Support of ``node`` (same interval)."""
        return self.nodes[(int(node[0]), int(node[1]))][0]

    def cut(self, k: int) -> list[BoundarySupport] | None:
        """Boundary support of the cut at ``k`` regions, or ``None`` when it was not measured."""
        return self.boundaries.get(int(k))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form stored under ``provenance["support"]``."""
        return {
            "n_resamples": self.n_resamples,
            "tolerance": self.tolerance,
            "seed": self.seed,
            "nodes": [
                {"interval": [start, stop], "support": round(s, 4), "near": round(n, 4)}
                for (start, stop), (s, n) in self.nodes.items()
            ],
            "cuts": {
                str(k): [{"row": b.row, "support": round(b.support, 4), "near": round(b.near, 4)} for b in items]
                for k, items in self.boundaries.items()
            },
        }

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any], source: str = "provenance.support") -> TreeSupport:
        """Read ``as_dict`` output back; errors name ``source`` and the field."""
        try:
            nodes = {
                (int(e["interval"][0]), int(e["interval"][1])): (float(e["support"]), float(e["near"]))
                for e in obj["nodes"]
            }
            boundaries = {
                int(k): [BoundarySupport(int(k), int(b["row"]), float(b["support"]), float(b["near"])) for b in items]
                for k, items in obj.get("cuts", {}).items()
            }
            seed = obj.get("seed")
            return cls(int(obj["n_resamples"]), int(obj["tolerance"]), None if seed is None else int(seed),
                       nodes, boundaries)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(
                f"{source}: malformed support record ({type(exc).__name__}: {exc}); rerun `workbench discover`"
            ) from exc


def _internal(tree: PartitionTree) -> list[Node]:
    return sorted(tree.internal_nodes)


def _near(node: Node, others: np.ndarray, tolerance: int) -> bool:
    if others.size == 0:
        return False
    return bool(np.any(np.abs(others - np.asarray(node)).max(axis=1) <= tolerance))


def _boundaries(tree: PartitionTree, k: int) -> list[int]:
    return [start for start, _ in tree.cut_regions(k)][1:]


def support_from_refits(
    tree: PartitionTree,
    refits: Iterable[PartitionTree],
    ks: Sequence[int] = (),
    tolerance: int = 1,
    seed: int | None = None,
) -> TreeSupport:
    """Support of ``tree``'s internal nodes and of the boundaries of its cuts at ``ks`` among ``refits``.

    Args:
        tree: the tree fitted on all subjects.
        refits: trees fitted on subject resamples (same rows).
        ks: region counts whose cut boundaries get a support (unreachable ones are skipped).
        tolerance: rows either end (or a boundary) may move and still count as ``near``.
        seed: the resamples' seed, recorded with the result.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 rows, got {tolerance}")
    nodes = _internal(tree)
    reachable = set(tree.reachable_ks())
    ks = sorted({int(k) for k in ks if int(k) in reachable and 2 <= int(k) <= tree.n_rows})
    cut_rows = {k: _boundaries(tree, k) for k in ks}
    same = np.zeros(len(nodes))
    near = np.zeros(len(nodes))
    cut_same = {k: np.zeros(len(rows)) for k, rows in cut_rows.items()}
    cut_near = {k: np.zeros(len(rows)) for k, rows in cut_rows.items()}
    count = 0
    for refit in refits:
        if refit.n_rows != tree.n_rows:
            raise ValueError(f"a refit has {refit.n_rows} rows, the tree {tree.n_rows}; refit on the same rows")
        count += 1
        theirs = set(refit.internal_nodes)
        spans = np.array(sorted(theirs), dtype=np.int64).reshape(-1, 2)
        for i, node in enumerate(nodes):
            if node in theirs:
                same[i] += 1
                near[i] += 1
            elif _near(node, spans, tolerance):
                near[i] += 1
        reachable_refit = set(refit.reachable_ks())
        for k, rows in cut_rows.items():
            if k not in reachable_refit:
                continue
            found = np.asarray(_boundaries(refit, k))
            for j, row in enumerate(rows):
                gap = np.abs(found - row).min() if found.size else np.inf
                cut_same[k][j] += gap == 0
                cut_near[k][j] += gap <= tolerance
    if count == 0:
        raise ValueError("no refits to measure support on; give at least one resampled tree")
    return TreeSupport(
        count,
        int(tolerance),
        seed,
        {node: (float(same[i] / count), float(near[i] / count)) for i, node in enumerate(nodes)},
        {
            k: [
                BoundarySupport(k, row, float(cut_same[k][j] / count), float(cut_near[k][j] / count))
                for j, row in enumerate(rows)
            ]
            for k, rows in cut_rows.items()
        },
    )


def bootstrap_support(
    estimator: HierarchyDiscovery,
    stats: DescriptorStats,
    n_resamples: int = 100,
    ks: Sequence[int] = (2, 3, 4, 6, 8),
    tolerance: int = 1,
    random_state: int | None = None,
) -> TreeSupport:
    """Fit ``estimator`` on all of ``stats`` and measure the support of its tree over subject resamples.

    Example: ``bootstrap_support(HierarchyDiscovery(feature_groups=stats.feature_groups), stats)``.

    Args:
        estimator: a contiguous ``HierarchyDiscovery`` (fitted or not; it is cloned).
        stats: per-subject descriptor sums (at least 2 subjects).
        n_resamples: subject resamples.
        ks: region counts whose cut boundaries get a support.
        tolerance: rows an interval end or a boundary may move and count as ``near``.
        random_state: seed of the resamples (default: the estimator's).
    """
    from sklearn.base import clone

    full = clone(estimator).fit(stats.matrix())
    seed = estimator.random_state if random_state is None else random_state
    refits = bootstrap_refits(estimator, stats, n_resamples, seed)
    return support_from_refits(full.tree_, (r.tree_ for r in refits), ks, tolerance, seed)


def read_support(tree: PartitionTree) -> TreeSupport | None:
    """The support recorded in ``tree.provenance`` (by ``discover_tree``), or ``None``.

    Raises when the record names intervals that are not internal nodes of ``tree`` (a record copied
    from another tree).
    """
    record = tree.provenance.get(SUPPORT_KEY)
    if record is None:
        return None
    where = f"tree {tree.name or tree.tree_id!r}: provenance.support"
    support = TreeSupport.from_dict(record, where)
    stray = sorted(set(support.nodes) - set(tree.internal_nodes))
    if stray:
        raise ValueError(
            f"{where} names intervals {[list(n) for n in stray[:3]]} that are not nodes of this tree; "
            "it belongs to another tree; rerun `workbench discover` to record this tree's support"
        )
    return support


__all__ = [
    "SUPPORT_KEY",
    "BoundarySupport",
    "TreeSupport",
    "bootstrap_refits",
    "bootstrap_support",
    "read_support",
    "support_from_refits",
]
