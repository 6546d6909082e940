"""``PartitionTree``: a rooted tree of contiguous row intervals with merge heights."""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import networkx as nx
import numpy as np

from workbench.hierarchy._rescale import is_nested, refines, rescale_cuts, rescale_split, rescale_splits

Node = tuple[int, int]


class PartitionTree:
    """A rooted tree over rows ``0..n_rows``: every node is a half-open interval, children tile it.

    Leaves are single rows. Each internal node carries a merge height (a parent is never lower
    than its children); ``cut(k)`` undoes merges from the highest down until ``k`` regions remain.
    Build one with ``from_linkage``, ``from_levels`` or ``load``; users rarely call the constructor.

    Args:
        n_rows: number of silhouette rows the tree covers.
        splits: for every internal node ``(start, stop)``, its height and its children's sizes.
        name: short name (file stem of the hierarchy file).
        provenance: where the tree came from (dataset, descriptor, linkage, metric, seed, version).
        paper_cuts: the cuts the tree was used with, coarse to fine (presets record the paper's).
    """

    def __init__(
        self,
        n_rows: int,
        splits: Mapping[Node, tuple[float, Sequence[int]]],
        *,
        name: str = "",
        provenance: Mapping[str, Any] | None = None,
        paper_cuts: Sequence[Sequence[int]] = (),
    ) -> None:
        if int(n_rows) < 1:
            raise ValueError(f"n_rows must be >= 1, got {n_rows}")
        self.n_rows = int(n_rows)
        self.name = name
        self.provenance: dict[str, Any] = dict(provenance or {})
        self.graph = self._build_graph(self.n_rows, splits)
        self.root: Node = (0, self.n_rows)
        self._order = sorted(
            (n for n in self.graph if self.graph.out_degree(n) > 0),
            key=lambda n: (-self.height(n), -(n[1] - n[0]), n[0]),
        )
        self.paper_cuts = [list(map(int, c)) for c in paper_cuts]
        for cut in self.paper_cuts:
            if sum(cut) != self.n_rows:
                raise ValueError(f"paper cut {cut} sums to {sum(cut)}, the tree has {self.n_rows} rows")
        if not is_nested(self.paper_cuts):
            raise ValueError(f"paper cuts {self.paper_cuts} are not nested (each must refine the one before)")

    @staticmethod
    def _build_graph(n_rows: int, splits: Mapping[Node, tuple[float, Sequence[int]]]) -> nx.DiGraph:
        graph = nx.DiGraph()
        graph.add_node((0, n_rows), height=0.0)
        pending = [(0, n_rows)]
        seen: set[Node] = set()
        while pending:
            node = pending.pop()
            start, stop = node
            if stop - start == 1:
                graph.nodes[node]["height"] = 0.0
                continue
            if node not in splits:
                raise ValueError(
                    f"node {list(node)} ({stop - start} rows) has no split; every interval longer than one "
                    "row needs an entry with its height and child sizes"
                )
            seen.add(node)
            height, sizes = splits[node]
            sizes = [int(s) for s in sizes]
            if len(sizes) < 2 or any(s < 1 for s in sizes) or sum(sizes) != stop - start:
                raise ValueError(
                    f"node {list(node)}: child sizes {sizes} must be >= 2 positive heights that tile "
                    f"its {stop - start} rows"
                )
            if not np.isfinite(height):
                raise ValueError(f"node {list(node)}: merge height {height} is not finite")
            graph.nodes[node]["height"] = float(height)
            edge = start
            for size in sizes:
                child = (edge, edge + size)
                graph.add_node(child, height=0.0)
                graph.add_edge(node, child)
                pending.append(child)
                edge += size
        extra = sorted(set(splits) - seen)
        if extra:
            raise ValueError(f"splits {[list(n) for n in extra]} are not reachable from the root (0, {n_rows})")
        for parent, child in graph.edges:
            if graph.nodes[child]["height"] > graph.nodes[parent]["height"]:
                raise ValueError(
                    f"node {list(child)} is higher ({graph.nodes[child]['height']:g}) than its parent "
                    f"{list(parent)} ({graph.nodes[parent]['height']:g}); merge heights must not decrease upwards"
                )
        return graph

    # -- structure -------------------------------------------------------------------------------

    def children(self, node: Node) -> list[Node]:
        """The children of ``node``, top (row 0 side) first; empty for a leaf."""
        return sorted(self.graph.successors(tuple(node)))

    def height(self, node: Node) -> float:
        """The merge height of ``node`` (0 for a leaf)."""
        return float(self.graph.nodes[tuple(node)]["height"])

    @property
    def leaves(self) -> list[Node]:
        """The single-row leaves, top first."""
        return [(r, r + 1) for r in range(self.n_rows)]

    @property
    def internal_nodes(self) -> list[Node]:
        """Internal nodes in the order ``cut`` splits them (highest merge first)."""
        return list(self._order)

    def splits(self) -> dict[Node, tuple[float, list[int]]]:
        """Every internal node's height and child sizes (what the constructor takes)."""
        return {n: (self.height(n), [c[1] - c[0] for c in self.children(n)]) for n in self._order}

    # -- cuts ------------------------------------------------------------------------------------

    def reachable_ks(self) -> list[int]:
        """Every region count ``cut`` can produce, ascending."""
        ks = [1]
        for node in self._order:
            ks.append(ks[-1] + self.graph.out_degree(node) - 1)
        return ks

    def cut_regions(self, k: int) -> list[Node]:
        """The ``k`` regions (row intervals) left after undoing merges from the highest down."""
        k = int(k)
        if k < 1 or k > self.n_rows:
            raise ValueError(
                f"cannot cut tree {self.name or self.tree_id!r} into {k} regions: it has {self.n_rows} rows "
                f"(k must be between 1 and {self.n_rows})"
            )
        regions = {self.root}
        for node in self._order:
            if len(regions) >= k:
                break
            regions.remove(node)
            regions.update(self.children(node))
        if len(regions) != k:
            reachable = self.reachable_ks()
            shown = ", ".join(str(x) for x in reachable[:12]) + (", ..." if len(reachable) > 12 else "")
            raise ValueError(
                f"tree {self.name or self.tree_id!r} has no cut with {k} regions (its non-binary merges "
                f"split into several regions at once); reachable k: {shown}"
            )
        return sorted(regions)

    def cut(self, k: int) -> list[int]:
        """The heights of the ``k`` contiguous regions, top first, e.g. ``cut(2) == [40, 24]``."""
        return [stop - start for start, stop in self.cut_regions(k)]

    def cuts(self, ks: Iterable[int]) -> list[list[int]]:
        """``cut(k)`` for each k; cuts at growing k refine each other."""
        return [self.cut(k) for k in ks]

    def labels(self, k: int) -> np.ndarray:
        """Row labels ``[n_rows]`` (0..k-1, top first) of the cut with ``k`` regions."""
        return np.repeat(np.arange(k), self.cut(k))

    rescale_split = staticmethod(rescale_split)
    rescale_splits = staticmethod(rescale_splits)
    rescale_cuts = staticmethod(rescale_cuts)  # deprecated name, warns
    refines = staticmethod(refines)
    is_nested = staticmethod(is_nested)

    # -- identity --------------------------------------------------------------------------------

    @property
    def tree_id(self) -> str:
        """A stable id of the structure (intervals and split order), independent of provenance."""
        rank = {n: i for i, n in enumerate(self._order)}
        canonical = [
            [n[0], n[1], [c[1] - c[0] for c in self.children(n)], rank[n]]
            for n in sorted(self._order)
        ]
        payload = json.dumps({"n_rows": self.n_rows, "splits": canonical}, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PartitionTree) and self.tree_id == other.tree_id

    def __hash__(self) -> int:
        return hash(self.tree_id)

    def __repr__(self) -> str:
        return f"PartitionTree(name={self.name!r}, n_rows={self.n_rows}, tree_id={self.tree_id!r})"

    def with_metadata(
        self,
        *,
        name: str | None = None,
        provenance: Mapping[str, Any] | None = None,
        paper_cuts: Sequence[Sequence[int]] | None = None,
    ) -> PartitionTree:
        """A copy with a new name, provenance or recorded cuts; the structure is unchanged."""
        return PartitionTree(
            self.n_rows,
            self.splits(),
            name=self.name if name is None else name,
            provenance=self.provenance if provenance is None else provenance,
            paper_cuts=self.paper_cuts if paper_cuts is None else paper_cuts,
        )

    # -- constructors ----------------------------------------------------------------------------

    @classmethod
    def from_linkage(cls, linkage: np.ndarray, n_rows: int, **metadata: Any) -> PartitionTree:
        """Build from a scipy-style linkage ``[n_rows - 1, 4]`` whose clusters are all row intervals.

        Heights are made monotone (a parent is at least as high as its children) so that ``cut``
        never undoes a merge before the merge it contains.
        """
        z = np.asarray(linkage, dtype=np.float64)
        if z.ndim != 2 or z.shape != (n_rows - 1, 4):
            raise ValueError(f"linkage must have shape [{n_rows - 1}, 4] for {n_rows} rows, got {list(z.shape)}")
        intervals: list[Node] = [(r, r + 1) for r in range(n_rows)]
        heights = [0.0] * n_rows
        splits: dict[Node, tuple[float, list[int]]] = {}
        broken = 0
        for a, b, dist, _ in z:
            left, right = intervals[int(a)], intervals[int(b)]
            first, second = sorted((left, right))
            if first[1] != second[0]:
                broken += 1
                intervals.append((min(first[0], second[0]), max(first[1], second[1])))
                heights.append(float(dist))
                continue
            node = (first[0], second[1])
            height = max(float(dist), heights[int(a)], heights[int(b)])
            splits[node] = (height, [first[1] - first[0], second[1] - second[0]])
            intervals.append(node)
            heights.append(height)
        if broken:
            raise ValueError(
                f"{broken} of {n_rows - 1} merges join rows that are not adjacent, so the linkage is not a "
                "tree of row intervals; fit with contiguous=True to get a PartitionTree"
            )
        return cls(n_rows, splits, **metadata)

    @classmethod
    def from_levels(cls, n_rows: int, levels: Sequence[Sequence[int]], **metadata: Any) -> PartitionTree:
        """Build a preset from nested split lists, coarse to fine; rows below the finest by halving.

        Example: ``from_levels(64, [[64], [40, 24], [8, 32, 16, 8]])``. A region may split into more
        than two regions at the next level (OUMVLP's ``[4, 24, 4]``).
        """
        levels = [[int(s) for s in lv] for lv in levels]
        if not levels or levels[0] != [n_rows]:
            levels.insert(0, [n_rows])
        for i, level in enumerate(levels):
            if sum(level) != n_rows or any(s < 1 for s in level):
                raise ValueError(f"level {i} {level} must be positive heights summing to {n_rows}")
        for i in range(1, len(levels)):
            if not refines(levels[i - 1], levels[i]):
                raise ValueError(f"level {i} {levels[i]} does not refine level {i - 1} {levels[i - 1]}")
        splits: dict[Node, tuple[float, list[int]]] = {}

        def halve(start: int, stop: int) -> None:
            size = stop - start
            if size < 2:
                return
            upper = (size + 1) // 2
            # ceil(log2(size)): a half is always strictly lower than the region it came from.
            splits[(start, stop)] = (float(int(np.ceil(np.log2(size)))), [upper, size - upper])
            halve(start, start + upper)
            halve(start + upper, stop)

        finest = levels[-1]
        edges = np.concatenate([[0], np.cumsum(finest)])
        for a, b in itertools.pairwise(edges):
            halve(int(a), int(b))
        base = max((h for h, _ in splits.values()), default=0.0)
        for depth in range(len(levels) - 2, -1, -1):
            coarse, fine = levels[depth], levels[depth + 1]
            fine_edges = list(np.cumsum([0, *fine]))
            height = base + (len(levels) - 1 - depth)
            start = 0
            for size in coarse:
                stop = start + size
                inner = [e for e in fine_edges if start <= e <= stop]
                sizes = [b - a for a, b in itertools.pairwise(inner)]
                if len(sizes) > 1:
                    splits[(start, stop)] = (height, sizes)
                start = stop
        return cls(n_rows, splits, **metadata)

    # -- JSON ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: name, rows, id, provenance, recorded cuts and every internal node."""
        from workbench.hierarchy._io import tree_to_json

        return tree_to_json(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], source: str = "<json>") -> PartitionTree:
        """Rebuild a tree from ``to_json`` output; errors name ``source`` and the bad field."""
        from workbench.hierarchy._io import tree_from_json

        return tree_from_json(obj, source)

    def save(self, path: str | Any) -> None:
        """Write the tree as a hierarchy JSON file."""
        from workbench.hierarchy._io import save_tree

        save_tree(self, path)

    @classmethod
    def load(cls, path: str | Any) -> PartitionTree:
        """Read a hierarchy JSON file (errors name the file)."""
        from workbench.hierarchy._io import read_tree_file

        return read_tree_file(path)


__all__ = ["Node", "PartitionTree", "rescale_split", "rescale_splits"]
