"""The two evaluation passes the protocols share, both over probe chunks against a prepared gallery.

``cross_view_counts``: for each probe and each gallery view, is the nearest gallery sequence of
that view the probe's id? ``retrieval_scores``: rank-of-first-match, AP and INP of each probe over
the whole gallery, plus optionally its top-k gallery rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from workbench.evaluation._distance import GalleryIndex, as_index, top_k_stable
from workbench.evaluation._metrics import ProbeScores, nearest_per_group, probe_scores


def _codes(values: np.ndarray, vocabulary: Sequence[str]) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(vocabulary)}
    return np.fromiter((lookup[v] for v in values), dtype=np.int64, count=len(values))


def _check_lengths(count: int, **arrays: np.ndarray) -> None:
    for name, values in arrays.items():
        if len(values) != count:
            raise ValueError(f"{name}: {len(values)} entries for {count} embeddings; give one per sequence")


@dataclass(frozen=True)
class CrossViewCounts:
    """``int64 [conditions, views, views]`` counts: correct matches, probes evaluated, probes with a match.

    ``subject_correct``/``subject_total``/``subject_valid`` (``int64 [subjects, conditions, views,
    views]``) split them by the probe's subject, ``subjects`` (sorted) naming the ids that appear
    among the probes; the plain counts are their sums over subjects.
    """

    correct: np.ndarray
    total: np.ndarray
    valid: np.ndarray
    subject_correct: np.ndarray
    subject_total: np.ndarray
    subject_valid: np.ndarray
    subjects: tuple[str, ...]


def cross_view_counts(
    gallery: np.ndarray | GalleryIndex,
    gallery_ids: np.ndarray,
    gallery_views: np.ndarray,
    probes: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    views: Sequence[str],
    metric: str,
    chunk_size: int | None = None,
) -> CrossViewCounts:
    """Rank-1 counts per (condition, probe view, gallery view), summed and per probe subject.

    ``gallery: [G, c, p]`` with ``gallery_ids``/``gallery_views: [G]``; ``probes`` maps a condition to
    ``(embeddings [P, c, p], ids [P], views [P])``. A probe is compared with each gallery view
    separately: only the gallery sequences of that view compete. The per-subject counts
    (``[subjects, conditions, views, views]``) are what the subject bootstrap resamples.
    """
    index = as_index(gallery, metric)
    _check_lengths(index.size, gallery_ids=gallery_ids, gallery_views=gallery_views)
    for condition, (embeddings, ids, probe_views) in probes.items():
        _check_lengths(len(embeddings), **{f"{condition} ids": ids, f"{condition} views": probe_views})
    id_vocabulary = sorted(set(gallery_ids.tolist()).union(*(set(p[1].tolist()) for p in probes.values())))
    g_labels = torch.from_numpy(_codes(gallery_ids, id_vocabulary))
    g_views = _codes(gallery_views, views)
    groups = [torch.from_numpy(np.flatnonzero(g_views == v)) for v in range(len(views))]
    has_view = torch.tensor([len(g) > 0 for g in groups])
    # present[label, view]: the id has at least one gallery sequence in that view.
    present = np.zeros((len(id_vocabulary), len(views)), dtype=bool)
    present[g_labels.numpy(), g_views] = True
    subjects = sorted(set().union(*(set(p[1].tolist()) for p in probes.values())))
    # Counts per probe subject, so that the subjects can be resampled later (see _uncertainty).
    shape = (len(subjects), len(probes), len(views), len(views))
    correct, total, valid = (np.zeros(shape, dtype=np.int64) for _ in range(3))
    chunk = chunk_size or index.default_chunk()
    subject_present = present[_codes(np.asarray(subjects), id_vocabulary)]  # [subjects, views]
    for c, (embeddings, ids, probe_views) in enumerate(probes.values()):
        p_labels = _codes(ids, id_vocabulary)
        p_subjects = _codes(ids, subjects)
        p_views = _codes(probe_views, views)
        # Every probe counts against each gallery view there is, and is valid where its id is present.
        n_probes = np.zeros((len(subjects), len(views)), dtype=np.int64)
        np.add.at(n_probes, (p_subjects, p_views), 1)
        total[:, c] = n_probes[:, :, None] * has_view.numpy()[None, None, :]
        valid[:, c] = n_probes[:, :, None] * subject_present[:, None, :]
        for start in range(0, len(embeddings), chunk):
            stop = min(len(embeddings), start + chunk)
            nearest = nearest_per_group(index.distances(embeddings[start:stop]), groups)  # [b, V]
            labels = torch.from_numpy(p_labels[start:stop])
            hit = (nearest >= 0) & (g_labels[nearest.clamp(min=0)] == labels.reshape(-1, 1))
            cells = (p_subjects[start:stop], p_views[start:stop])
            np.add.at(correct[:, c], cells, hit.numpy().astype(np.int64))
    return CrossViewCounts(
        correct.sum(0), total.sum(0), valid.sum(0), correct, total, valid, tuple(str(s) for s in subjects)
    )


@dataclass(frozen=True)
class RetrievalScores:
    """Per-probe scores and, when asked for, the top-k gallery rows ``int64 [P, k]`` nearest first."""

    scores: ProbeScores
    top_rows: np.ndarray | None


def retrieval_scores(
    probe: np.ndarray,
    probe_ids: np.ndarray,
    gallery: np.ndarray | GalleryIndex,
    gallery_ids: np.ndarray,
    metric: str,
    top_k: int = 0,
    chunk_size: int | None = None,
) -> RetrievalScores:
    """Rank-of-first-match, AP and INP per probe over the whole gallery (and top-k rows if ``top_k``).

    ``gallery`` may be a prepared ``GalleryIndex``, so that callers can drop their own copy first.
    """
    index = as_index(gallery, metric)
    _check_lengths(index.size, gallery_ids=gallery_ids)
    _check_lengths(len(probe), probe_ids=probe_ids)
    vocabulary = sorted(set(gallery_ids.tolist()) | set(probe_ids.tolist()))
    g_labels = torch.from_numpy(_codes(gallery_ids, vocabulary))
    p_labels = torch.from_numpy(_codes(probe_ids, vocabulary))
    k = min(top_k, index.size)
    top = np.empty((len(probe), k), dtype=np.int64) if k else None
    parts: list[ProbeScores] = []
    chunk = chunk_size or index.default_chunk()
    for start in range(0, len(probe), chunk):
        stop = min(len(probe), start + chunk)
        dist = index.distances(probe[start:stop])
        parts.append(probe_scores(dist, p_labels[start:stop], g_labels))
        if top is not None:
            top[start:stop] = top_k_stable(dist, k)[0].cpu().numpy()
    return RetrievalScores(ProbeScores.concat(parts), top)
