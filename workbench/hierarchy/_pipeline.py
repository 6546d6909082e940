"""Discovery end to end: open a dataset, stream it through a row descriptor, fit the clustering, score.

Also the one pass over a dataset that a dendrogram's silhouette and evidence panels need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from workbench.hierarchy._descriptors import RowDescriptor, create_descriptor
from workbench.hierarchy._discovery import HierarchyDiscovery
from workbench.hierarchy._evidence import RowEvidence, estimator_for, row_evidence
from workbench.hierarchy._plot import MeanFrame, check_image
from workbench.hierarchy._presets import uniform_tree
from workbench.hierarchy._scores import (
    GroundTruthScore,
    StabilityScore,
    ground_truth_score,
    stability_from_refits,
)
from workbench.hierarchy._sources import GROUND_TRUTH_FILE, SequenceTable, open_sequences, read_ground_truth
from workbench.hierarchy._stats import DescriptorStats
from workbench.hierarchy._support import SUPPORT_KEY, TreeSupport, bootstrap_refits, support_from_refits
from workbench.hierarchy._tree import PartitionTree

DEFAULT_DESCRIPTOR = "row-articulation"


@dataclass(frozen=True)
class DiscoveryResult:
    """A discovered tree with the fitted estimator and the descriptor statistics it was fitted on."""

    tree: PartitionTree
    estimator: HierarchyDiscovery
    stats: DescriptorStats
    table: SequenceTable
    stability: list[StabilityScore] = field(default_factory=list)
    ground_truth: dict[str, GroundTruthScore] | None = None
    support: TreeSupport | None = None


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


def accumulate(descriptor: Any, table: SequenceTable, progress: bool = True,
               transform: Callable[[np.ndarray], np.ndarray] | None = None) -> DescriptorStats:
    """Stream ``table`` through ``descriptor`` (per-subject sums), with a progress bar over sequences;
    ``transform`` maps each sequence first (e.g. to a model's feature maps)."""
    from tqdm import tqdm

    indices = tqdm(range(len(table)), desc="describing rows", unit="seq", leave=False, disable=not progress)
    sequences = (table.load(i) for i in indices)
    return descriptor.accumulate(sequences if transform is None else map(transform, sequences), table.subjects)


def check_transform(descriptor: RowDescriptor, transform: Callable[[np.ndarray], np.ndarray] | None) -> None:
    """A descriptor of model activations needs a ``transform`` from silhouettes to them; one of silhouettes none."""
    if descriptor.kind == "activation" and transform is None:
        raise ValueError(f"descriptor {descriptor.name!r} reads a model's feature maps, not silhouettes: give a "
                         "trained model (`workbench discover --checkpoint CKPT`, or transform= in Python)")
    if descriptor.kind != "activation" and transform is not None:
        raise ValueError(f"descriptor {descriptor.name!r} reads silhouettes; a model's feature maps need an "
                         "activation descriptor (--descriptor activation-stats)")


def score_ground_truth(tree: PartitionTree, truth_file: str | Path) -> dict[str, GroundTruthScore]:
    """Scores of ``tree``'s cut with as many regions as the renderer has parts, and the uniform tree's.

    Returns ``{"discovered": ..., "uniform": ...}``; the truth is the median boundary row over the
    subjects of ``truth_file`` (a renderer's ``ground_truth.json``) at ``tree.n_rows`` rows.
    """
    true = read_ground_truth(truth_file, tree.n_rows)
    k = len(true) + 1
    return {
        "discovered": ground_truth_score(tree.cut(k), true),
        "uniform": ground_truth_score(uniform_tree(tree.n_rows).cut(k), true),
    }


def _training_subset(descriptor: RowDescriptor, data: str | Path, partition: str | Path | None) -> str | None:
    """``"train"`` for a descriptor that learns from subject labels when ``data`` can be split (a
    partition given or beside it), so it never sees the test subjects; ``None`` (every subject) else."""
    splittable = partition is not None or (Path(data) / "partition.json").is_file()
    return "train" if descriptor.learns_from_subjects and splittable else None


def discover_tree(
    data: str | Path,
    *,
    descriptor: str = DEFAULT_DESCRIPTOR,
    linkage: str = "ward",
    metric: str = "euclidean",
    standardize: bool | None = None,
    rows: int | None = None,
    subset: str | None = None,
    partition: str | Path | None = None,
    max_sequences: int | None = None,
    seed: int = 0,
    name: str = "",
    progress: bool = True,
    ks: Sequence[int] = (2, 3, 4, 6, 8),
    bootstrap: int = 0,
    tolerance: int = 1,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    source: Mapping[str, Any] | None = None,
) -> DiscoveryResult:
    """Discover a contiguous partition tree from the sequences under ``data``, with its scores.

    ``subset`` restricts an OpenGait dataset to the ``train``/``test`` ids of ``partition`` (default:
    the dataset's own partition file; a study passes its validation split and ``train``, so
    validation and test subjects stay unseen; a descriptor that learns from subject labels, such as
    ``row-identity``, reads the training subjects when ``subset`` is not given and the data has a
    partition); ``max_sequences`` caps the work. ``bootstrap``
    subject resamples (0: none; needs 2+ subjects) measure the stability of the cuts at ``ks`` and,
    from the same refits, the support of every node and of the boundaries of every cut from 2 to
    ``max(ks)`` regions (``near``: within ``tolerance`` rows); when ``data`` holds a renderer's
    ``ground_truth.json`` the cut with as many regions as true parts is scored against it, beside
    the uniform tree. Every score is also recorded in the tree's provenance. ``standardize=None``
    z-scores the descriptor's columns when the descriptor asks for it (``RowDescriptor.standardize``).
    An activation descriptor reads ``transform(sequence)`` (``workbench.models.feature_map_reader``);
    ``source`` (e.g. the checkpoint and stage) goes into the provenance.
    """
    import workbench

    row_descriptor = create_descriptor(descriptor, n_rows=rows)
    check_transform(row_descriptor, transform)
    if standardize is None:
        standardize = row_descriptor.standardize
    estimator = HierarchyDiscovery(linkage=linkage, metric=metric, standardize=standardize, random_state=seed)
    estimator._check_params()
    if bootstrap < 0:
        raise ValueError(f"bootstrap must be >= 0 subject resamples, got {bootstrap}")
    if subset is None:
        subset = _training_subset(row_descriptor, data, partition)
    table = select_sequences(open_sequences(data, subset=subset, partition=partition), max_sequences, seed)
    row_descriptor.check_subjects(table.subjects)  # before any sequence is read
    stats = accumulate(row_descriptor, table, progress, transform)
    # Block weights come from the descriptor, so the estimator (and every bootstrap clone) uses them.
    estimator.set_params(feature_groups=stats.feature_groups)
    estimator.fit(stats.matrix())
    tree = estimator.tree_
    valid = sorted({int(k) for k in ks if k in tree.reachable_ks() and k <= tree.n_rows})
    stability: list[StabilityScore] = []
    support = None
    if bootstrap > 0 and stats.n_subjects >= 2:
        # One set of refits serves both scores: the descriptor sums are reweighted, never re-read.
        refits = bootstrap_refits(estimator, stats, bootstrap, random_state=seed)
        stability = stability_from_refits(estimator, refits, valid)
        support = support_from_refits(tree, (r.tree_ for r in refits), range(2, max(valid, default=1) + 1),
                                      tolerance, seed)
    truth_file = Path(data) / GROUND_TRUTH_FILE
    truth = score_ground_truth(tree, truth_file) if truth_file.is_file() else None
    provenance: dict[str, Any] = {
        **tree.provenance,
        "dataset": str(data),
        "subset": subset or "all",
        **({"partition": str(partition)} if partition is not None else {}),
        "descriptor": descriptor,
        **dict(source or {}),
        "n_sequences": stats.n_sequences,
        "n_subjects": stats.n_subjects,
        "code_version": workbench.__version__,
        "cophenetic": float(estimator.cophenetic_),
    }
    if stability:
        provenance["stability"] = [s.as_dict() for s in stability]
    if support is not None:
        provenance[SUPPORT_KEY] = support.as_dict()
    if truth is not None:
        provenance["ground_truth"] = {label: score.as_dict() for label, score in truth.items()}
    named = tree.with_metadata(name=name, provenance=provenance, paper_cuts=tree.cuts(valid))
    return DiscoveryResult(named, estimator, stats, table, stability, truth, support)


def silhouette_and_evidence(
    data: str | Path,
    tree: PartitionTree,
    *,
    evidence: bool = True,
    descriptor: str | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, RowEvidence | None]:
    """The mean silhouette of ``data`` and (``evidence``) the row evidence of ``tree``'s descriptor, in one pass.

    The descriptor, linkage, metric and standardising come from ``tree.provenance`` (what discovered
    the tree); a preset falls back to ``DEFAULT_DESCRIPTOR`` with ward and Euclidean distances. A
    descriptor that learns from subject labels reads the training subjects only, as discovery did
    (the partition recorded in the provenance when that file exists, else the data's own), and so
    does the mean silhouette then.
    """
    from tqdm import tqdm

    name = descriptor or str(tree.provenance.get("descriptor", DEFAULT_DESCRIPTOR))
    row_descriptor = create_descriptor(name, n_rows=tree.n_rows) if evidence else None
    subset, partition = None, None
    if row_descriptor is not None and row_descriptor.learns_from_subjects:
        recorded = tree.provenance.get("partition")
        partition = Path(recorded) if recorded is not None and Path(recorded).is_file() else None
        subset = _training_subset(row_descriptor, data, partition)
    table = open_sequences(data, subset=subset, partition=partition)
    if row_descriptor is not None:
        try:
            row_descriptor.check_subjects(table.subjects)
        except ValueError as exc:
            raise ValueError(f"{exc}; or draw the silhouette without evidence (--no-evidence)") from exc
    first = np.asarray(table.load(0)) if len(table) else np.zeros((0, 0, 0))
    if first.ndim == 3 and first.shape[0] > 0:
        check_image(tree, first[0])  # before the pass: the data must be the tree's height
    mean = MeanFrame()
    if row_descriptor is None:
        for i in tqdm(range(len(table)), desc="averaging", leave=False, disable=not progress):
            mean.add(table.load(i))
        return mean.value(), None
    if row_descriptor.kind != "silhouette":
        raise ValueError(f"descriptor {name!r} reads model activations, not silhouettes; pass a silhouette "
                         "descriptor (e.g. --descriptor row-articulation) or skip the evidence panels")

    def tapped() -> Any:
        for i in tqdm(range(len(table)), desc="describing rows", unit="seq", leave=False, disable=not progress):
            seq = table.load(i)
            mean.add(seq)
            yield seq

    stats = row_descriptor.accumulate(tapped(), table.subjects)
    return mean.value(), row_evidence(stats, estimator_for(tree.provenance, stats))
