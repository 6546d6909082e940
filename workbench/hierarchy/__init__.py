"""Hierarchy discovery: row descriptors, contiguous agglomerative clustering, partition trees, scores.

NumPy in, NumPy out: sequences ``uint8 [frames, h, w]`` (or activations ``[c, s, h, w]``) become
row descriptors ``[n_rows, n_features]``, which ``HierarchyDiscovery`` turns into a ``PartitionTree``.

The modules that need SciPy, scikit-learn or Matplotlib (discovery, scores, evidence, figures) load on
first use of one of their names, so that a process which only reads trees (a study worker, a model
builder) does not pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from workbench.hierarchy._articulation import TILT_SIGNALS, RowArticulation, edge_tilts, subpixel_edges
from workbench.hierarchy._descriptors import (
    SIGNALS,
    ActivationStats,
    RowCoherence,
    RowDescriptor,
    RowSpectrum,
    RowStats,
    create_descriptor,
    descriptor_summaries,
    list_descriptors,
    map_rows,
    register_descriptor,
    row_coherence,
)
from workbench.hierarchy._identity import (
    IDENTITY_BLOCKS,
    IdentityStats,
    RowIdentity,
    SubjectAnova,
    identity_rows,
    subject_anova,
)
from workbench.hierarchy._io import TreeInfo, list_trees, load_tree, read_tree_file, save_tree
from workbench.hierarchy._presets import (
    PAPER_CUTS,
    list_presets,
    preset_description,
    preset_tree,
    uniform_tree,
)
from workbench.hierarchy._rescale import is_nested, refines, rescale_cuts, rescale_split, rescale_splits
from workbench.hierarchy._sources import GROUND_TRUTH_FILE, SequenceTable, open_sequences, read_ground_truth
from workbench.hierarchy._stats import DescriptorStats
from workbench.hierarchy._support import (
    BoundarySupport,
    TreeSupport,
    bootstrap_refits,
    bootstrap_support,
    read_support,
    support_from_refits,
)
from workbench.hierarchy._tree import PartitionTree

# Loaded on first use (see the module docstring).
_LAZY: dict[str, tuple[str, ...]] = {
    "_compare": ("CutComparison", "compare_cuts"),
    "_discovery": ("LINKAGES", "METRICS", "HierarchyDiscovery", "row_distances"),
    "_evidence": ("RowEvidence", "estimator_for", "row_evidence"),
    "_pipeline": ("DEFAULT_DESCRIPTOR", "DiscoveryResult", "discover_tree", "score_ground_truth",
                  "select_sequences", "silhouette_and_evidence"),
    "_plot": ("mean_silhouette", "plot_dendrogram"),
    "_plot_compare": ("plot_tree_comparison",),
    "_scores": ("GroundTruthScore", "StabilityScore", "bootstrap_stability", "boundary_distances",
                "cophenetic_correlation", "ground_truth_score", "split_labels", "stability_from_refits"),
}
_LAZY_NAMES = {name: module for module, names in _LAZY.items() for name in names}

if TYPE_CHECKING:
    from workbench.hierarchy._compare import CutComparison, compare_cuts
    from workbench.hierarchy._discovery import LINKAGES, METRICS, HierarchyDiscovery, row_distances
    from workbench.hierarchy._evidence import RowEvidence, estimator_for, row_evidence
    from workbench.hierarchy._pipeline import (
        DEFAULT_DESCRIPTOR,
        DiscoveryResult,
        discover_tree,
        score_ground_truth,
        select_sequences,
        silhouette_and_evidence,
    )
    from workbench.hierarchy._plot import mean_silhouette, plot_dendrogram
    from workbench.hierarchy._plot_compare import plot_tree_comparison
    from workbench.hierarchy._scores import (
        GroundTruthScore,
        StabilityScore,
        bootstrap_stability,
        boundary_distances,
        cophenetic_correlation,
        ground_truth_score,
        split_labels,
        stability_from_refits,
    )


def __getattr__(name: str) -> Any:
    module = _LAZY_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


__all__ = [
    "DEFAULT_DESCRIPTOR",
    "GROUND_TRUTH_FILE",
    "IDENTITY_BLOCKS",
    "LINKAGES",
    "METRICS",
    "PAPER_CUTS",
    "SIGNALS",
    "TILT_SIGNALS",
    "ActivationStats",
    "BoundarySupport",
    "CutComparison",
    "DescriptorStats",
    "DiscoveryResult",
    "GroundTruthScore",
    "HierarchyDiscovery",
    "IdentityStats",
    "PartitionTree",
    "RowArticulation",
    "RowCoherence",
    "RowDescriptor",
    "RowEvidence",
    "RowIdentity",
    "RowSpectrum",
    "RowStats",
    "SequenceTable",
    "StabilityScore",
    "SubjectAnova",
    "TreeInfo",
    "TreeSupport",
    "bootstrap_refits",
    "bootstrap_stability",
    "bootstrap_support",
    "boundary_distances",
    "compare_cuts",
    "cophenetic_correlation",
    "create_descriptor",
    "descriptor_summaries",
    "discover_tree",
    "edge_tilts",
    "estimator_for",
    "ground_truth_score",
    "identity_rows",
    "is_nested",
    "list_descriptors",
    "list_presets",
    "list_trees",
    "load_tree",
    "map_rows",
    "mean_silhouette",
    "open_sequences",
    "plot_dendrogram",
    "plot_tree_comparison",
    "preset_description",
    "preset_tree",
    "read_ground_truth",
    "read_support",
    "read_tree_file",
    "refines",
    "register_descriptor",
    "rescale_cuts",
    "rescale_split",
    "rescale_splits",
    "row_coherence",
    "row_distances",
    "row_evidence",
    "save_tree",
    "score_ground_truth",
    "select_sequences",
    "silhouette_and_evidence",
    "split_labels",
    "stability_from_refits",
    "subject_anova",
    "subpixel_edges",
    "support_from_refits",
    "uniform_tree",
]
