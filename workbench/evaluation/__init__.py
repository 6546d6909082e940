"""Evaluation: chunked per-part distances, rank-k / mAP / mINP, and the gait recognition protocols.

Example::

    from workbench.evaluation import extract_embeddings, evaluate

    data = extract_embeddings(model, source, batch_size=8)  # EmbeddingSet, [N, c, p]
    result = evaluate(data, "casia-b")                       # CrossViewResult
    print(result.table()); result.summary()                  # {"rank1": ..., "rank1_nm": ..., ...}

Protocols (``list_protocols()``) and their ``summary()`` keys, all in percent; every protocol has
``rank1``, its headline (``result.primary_metric``):

- ``casia-b``, ``synthetic``: ``rank1`` (= ``rank1_mean``, the mean over conditions), ``rank1_nm``,
  ``rank1_bg``, ``rank1_cl``.
- ``oumvlp``: ``rank1``/``rank1_nm``/``rank1_mean`` counting probes without a gallery match as
  misses, and the same with ``_excluded`` leaving them out.
- ``grew``: ``rank1``, ``rank5``, ``rank10``, ``rank20``; ``RankResult.write_submission``
  writes the CSV the GREW server takes: header ``videoId,rank1,...,rank20``, then one row per probe:
  its video id (the probe's view folder in OpenGait's GREW layout) and the ids of its 20 nearest
  gallery sequences, nearest first.
- ``gait3d``: ``rank1``, ``rank5``, ``rank10``, ``map``, ``minp``.

Each figure ``k`` comes with ``k_ci_low``/``k_ci_high``: a 95 % interval from a bootstrap over the
test subjects whose sequences are probes (the gallery stays fixed; ``evaluate(..., resamples=0)``
turns it off). ``result.resampled(subject_weights(result.n_subjects))`` gives the resampled figures;
``paired_difference(a, b, protocol)`` compares two models' embeddings of one test set (paired
bootstrap interval and a subject swap permutation p-value), ``paired_results`` two results, e.g.
read back from evaluation folders with ``load_result(out_dir)``.
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
from workbench.evaluation._load import has_saved_result, load_result
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
    paired_difference,
    register_protocol,
)
from workbench.evaluation._rank_result import RankResult
from workbench.evaluation._replicates import (
    ConfigurationRow,
    Estimate,
    Sizing,
    compare_configurations,
    holm,
    sizing,
    verdict,
)
from workbench.evaluation._results import CrossViewResult, EvaluationResult
from workbench.evaluation._uncertainty import paired_results, subject_weights
from workbench.evaluation._validation import validation_protocol

__all__ = [
    "METRICS",
    "ConfigurationRow",
    "CrossViewCounts",
    "CrossViewProtocol",
    "CrossViewResult",
    "EmbeddingSet",
    "Estimate",
    "EvaluationResult",
    "GEIBaseline",
    "GREWProtocol",
    "Gait3DProtocol",
    "GalleryIndex",
    "ProbeScores",
    "Protocol",
    "RankResult",
    "RetrievalScores",
    "Sizing",
    "SyntheticProtocol",
    "cmc",
    "compare_configurations",
    "cross_view_counts",
    "evaluate",
    "evaluate_model",
    "extract_embeddings",
    "gait_energy_images",
    "gei_baseline",
    "get_protocol",
    "has_saved_result",
    "holm",
    "iter_distances",
    "list_protocols",
    "load_result",
    "make_evaluator",
    "mean_ap",
    "mean_inp",
    "nearest_neighbours",
    "nearest_per_group",
    "open_for_protocol",
    "paired_difference",
    "paired_results",
    "pairwise_distances",
    "plot_view_heatmap",
    "positive_ranks",
    "probe_flags",
    "probe_scores",
    "register_protocol",
    "retrieval_scores",
    "sizing",
    "subject_weights",
    "top_k_stable",
    "validation_protocol",
    "verdict",
]
