"""Discovery end to end: open a dataset, stream it through a row descriptor, fit the clustering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from workbench.hierarchy._descriptors import create_descriptor
from workbench.hierarchy._discovery import HierarchyDiscovery
from workbench.hierarchy._sources import SequenceTable, open_sequences
from workbench.hierarchy._stats import DescriptorStats
from workbench.hierarchy._tree import PartitionTree


@dataclass(frozen=True)
class DiscoveryResult:
    """A discovered tree with the fitted estimator and the descriptor statistics it was fitted on."""

    tree: PartitionTree
    estimator: HierarchyDiscovery
    stats: DescriptorStats
    table: SequenceTable


def select_sequences(table: SequenceTable, max_sequences: int | None, seed: int = 0) -> SequenceTable:
    """At most ``max_sequences`` of ``table``, drawn evenly at random but keeping every subject present."""
    if max_sequences is None or len(table) <= max_sequences:
        return table
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table))
    chosen: list[int] = []
    seen: set[str] = set()
    for i in order:  # one sequence per subject first, so resampling subjects stays meaningful
        if table.subjects[i] not in seen:
            seen.add(table.subjects[i])
            chosen.append(int(i))
    chosen_set = set(chosen)
    chosen.extend(int(i) for i in order if int(i) not in chosen_set)
    keep = sorted(chosen[:max_sequences])
    return SequenceTable(table.name, table.kind, [table.subjects[i] for i in keep],
                         lambda j: table.load(keep[j]))


def accumulate(descriptor: Any, table: SequenceTable, progress: bool = True) -> DescriptorStats:
    """Stream ``table`` through ``descriptor`` (per-subject sums), with a progress bar over sequences."""
    from tqdm import tqdm

    indices = tqdm(range(len(table)), desc="describing rows", unit="seq", leave=False, disable=not progress)
    return descriptor.accumulate((table.load(i) for i in indices), table.subjects)


def discover_tree(
    data: str | Path,
    *,
    descriptor: str = "row-coherence",
    linkage: str = "ward",
    metric: str = "euclidean",
    standardize: bool = True,
    rows: int | None = None,
    subset: str | None = None,
    max_sequences: int | None = None,
    seed: int = 0,
    name: str = "",
    progress: bool = True,
    ks: Sequence[int] = (2, 3, 4, 6, 8),
) -> DiscoveryResult:
    """Discover a contiguous partition tree from the sequences under ``data``.

    ``subset`` restricts an OpenGait dataset to its partition's ``train``/``test`` ids (discovery for a
    study uses ``train`` so test subjects stay unseen); ``max_sequences`` caps the work.
    """
    import workbench

    estimator = HierarchyDiscovery(linkage=linkage, metric=metric, standardize=standardize, random_state=seed)
    estimator._check_params()
    table = select_sequences(open_sequences(data, subset=subset), max_sequences, seed)
    stats = accumulate(create_descriptor(descriptor, n_rows=rows), table, progress)
    estimator.fit(stats.matrix())
    tree = estimator.tree_
    provenance = {
        **tree.provenance,
        "dataset": str(data),
        "subset": subset or "all",
        "descriptor": descriptor,
        "n_sequences": stats.n_sequences,
        "n_subjects": stats.n_subjects,
        "code_version": workbench.__version__,
        "cophenetic": float(estimator.cophenetic_),
    }
    valid = [k for k in ks if k in tree.reachable_ks() and k <= tree.n_rows]
    named = tree.with_metadata(name=name, provenance=provenance, paper_cuts=tree.cuts(valid))
    return DiscoveryResult(named, estimator, stats, table)
