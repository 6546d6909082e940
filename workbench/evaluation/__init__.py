"""Evaluation: chunked per-part distances, rank-k / mAP / mINP, and the gait recognition protocols.

Example::

    from workbench.evaluation import extract_embeddings, evaluate

    data = extract_embeddings(model, source, batch_size=8)  # EmbeddingSet, [N, c, p]
    result = evaluate(data, "casia-b")                       # CrossViewResult
    print(result.table()); result.summary()                  # {"rank1_nm": ..., "rank1_mean": ...}
"""

from __future__ import annotations

from workbench.evaluation._distance import (
    METRICS,
    GalleryIndex,
    iter_distances,
    nearest_neighbours,
    pairwise_distances,
    top_k_stable,
)
from workbench.evaluation._embed import (
    evaluate_model,
    extract_embeddings,
    make_evaluator,
    open_for_protocol,
    probe_flags,
)
from workbench.evaluation._embeddings import EmbeddingSet
from workbench.evaluation._engine import CrossViewCounts, RetrievalScores, cross_view_counts, retrieval_scores
from workbench.evaluation._figures import plot_view_heatmap
from workbench.evaluation._gei import GEIBaseline, gait_energy_images, gei_baseline
from workbench.evaluation._metrics import (
    ProbeScores,
    cmc,
    mean_ap,
    mean_inp,
    nearest_per_group,
    positive_ranks,
    probe_scores,
)
from workbench.evaluation._protocols import (
    CrossViewProtocol,
    Gait3DProtocol,
    GREWProtocol,
    Protocol,
    SyntheticProtocol,
    evaluate,
    get_protocol,
    list_protocols,
    register_protocol,
)
from workbench.evaluation._results import CrossViewResult, EvaluationResult, RankResult

__all__ = [
    "METRICS",
    "CrossViewCounts",
    "CrossViewProtocol",
    "CrossViewResult",
    "EmbeddingSet",
    "EvaluationResult",
    "GEIBaseline",
    "GREWProtocol",
    "Gait3DProtocol",
    "GalleryIndex",
    "ProbeScores",
    "Protocol",
    "RankResult",
    "RetrievalScores",
    "SyntheticProtocol",
    "cmc",
    "cross_view_counts",
    "evaluate",
    "evaluate_model",
    "extract_embeddings",
    "gait_energy_images",
    "gei_baseline",
    "get_protocol",
    "iter_distances",
    "list_protocols",
    "make_evaluator",
    "mean_ap",
    "mean_inp",
    "nearest_neighbours",
    "nearest_per_group",
    "open_for_protocol",
    "pairwise_distances",
    "plot_view_heatmap",
    "positive_ranks",
    "probe_flags",
    "probe_scores",
    "register_protocol",
    "retrieval_scores",
    "top_k_stable",
]
