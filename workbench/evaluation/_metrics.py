"""Retrieval metrics per probe (rank of the first match, AP, INP) computed one distance chunk at a time.

Definitions (ReID / Gait3D convention): rank the gallery by distance, ties by gallery order; with the
positives (same id) at 1-based positions ``r_1 < ... < r_m``, the probe's rank-k hit is ``r_1 <= k``,
its average precision is ``mean_j(j / r_j)`` and its inverse negative penalty is ``m / r_m``.
mAP and mINP average these over the probes that have at least one positive.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

# Elements compared at once while locating the positives' ranks ([rows, gallery] boolean work).
_COMPARE_ELEMENTS = 1 << 23


@dataclass(frozen=True)
class ProbeScores:
    """Per-probe retrieval scores: ``first_hit`` (1-based rank of the first match, 0 if none), ``ap``,
    ``inp`` and ``positives`` (matching gallery sequences), each ``[P]``."""

    first_hit: np.ndarray
    ap: np.ndarray
    inp: np.ndarray
    positives: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        """``bool [P]``: probes with at least one gallery sequence of their id."""
        return self.positives > 0

    def __len__(self) -> int:
        return len(self.first_hit)

    @staticmethod
    def concat(parts: Sequence[ProbeScores]) -> ProbeScores:
        """Join the scores of consecutive probe chunks."""
        if not parts:
            empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
            return ProbeScores(empty_i, empty_f, empty_f.copy(), empty_i.copy())
        return ProbeScores(
            np.concatenate([p.first_hit for p in parts]),
            np.concatenate([p.ap for p in parts]),
            np.concatenate([p.inp for p in parts]),
            np.concatenate([p.positives for p in parts]),
        )


def positive_ranks(
    dist: torch.Tensor, probe_labels: torch.Tensor, gallery_labels: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, ranks)``: for every (probe, positive gallery) pair, the probe row and the 1-based rank.

    ``dist: [b, G]``; ``probe_labels: int64 [b]``, ``gallery_labels: int64 [G]``. The rank counts the
    gallery sequences strictly closer plus the equally close ones earlier in the gallery, which is
    where a stable sort would put it; no row is ever sorted.
    """
    # Labels may come from the CPU while the distances sit on a GPU: compare on the distances' device.
    probe_labels, gallery_labels = probe_labels.to(dist.device), gallery_labels.to(dist.device)
    matches = probe_labels.reshape(-1, 1) == gallery_labels.reshape(1, -1)
    rows, cols = torch.nonzero(matches, as_tuple=True)
    ranks = torch.empty(len(rows), dtype=torch.int64)
    gallery_size = dist.shape[1]
    positions = torch.arange(gallery_size, device=dist.device).reshape(1, -1)
    step = max(1, _COMPARE_ELEMENTS // max(1, gallery_size))
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        candidates = dist[r]
        threshold = candidates.gather(1, c.reshape(-1, 1))
        closer = (candidates < threshold).sum(1)
        tied_before = ((candidates == threshold) & (positions < c.reshape(-1, 1))).sum(1)
        ranks[start : start + step] = (closer + tied_before + 1).cpu()
    return rows.cpu().numpy(), ranks.numpy()


def probe_scores(dist: torch.Tensor, probe_labels: torch.Tensor, gallery_labels: torch.Tensor) -> ProbeScores:
    """Rank-of-first-match, AP and INP of each probe of one chunk: ``dist: [b, G]`` -> ``ProbeScores``."""
    count = dist.shape[0]
    rows, ranks = positive_ranks(dist, probe_labels, gallery_labels)
    positives = np.bincount(rows, minlength=count).astype(np.int64)
    first_hit = np.zeros(count, dtype=np.int64)
    ap = np.zeros(count, dtype=np.float64)
    inp = np.zeros(count, dtype=np.float64)
    if len(rows):
        order = np.lexsort((ranks, rows))
        rows, ranks = rows[order], ranks[order]
        group_start = np.cumsum(positives) - positives
        # j: 1-based order of each positive among its probe's positives.
        j = np.arange(len(rows)) - group_start[rows] + 1
        valid = positives > 0
        ap[valid] = (np.bincount(rows, weights=j / ranks, minlength=count) / np.maximum(positives, 1))[valid]
        first_hit[valid] = ranks[group_start[valid]]
        last = ranks[group_start[valid] + positives[valid] - 1]
        inp[valid] = positives[valid] / last
    return ProbeScores(first_hit, ap, inp, positives)


def cmc(scores: ProbeScores, ranks: Iterable[int], *, valid_only: bool = True) -> dict[int, float]:
    """Rank-k accuracy in percent for each ``k``: the share of probes whose first match is within ``k``.

    ``valid_only`` drops probes with no gallery sequence of their id (else they count as misses).
    """
    keep = scores.valid if valid_only else np.ones(len(scores), dtype=bool)
    total = int(keep.sum())
    result: dict[int, float] = {}
    for k in ranks:
        if k < 1:
            raise ValueError(f"rank {k}: ranks are 1-based")
        hits = int(((scores.first_hit >= 1) & (scores.first_hit <= k) & keep).sum())
        result[int(k)] = 100.0 * hits / total if total else float("nan")
    return result


def mean_ap(scores: ProbeScores) -> float:
    """mAP in percent over the probes with at least one positive (NaN if none has)."""
    valid = scores.valid
    return float(100.0 * scores.ap[valid].mean()) if valid.any() else float("nan")


def mean_inp(scores: ProbeScores) -> float:
    """mINP in percent over the probes with at least one positive (NaN if none has)."""
    valid = scores.valid
    return float(100.0 * scores.inp[valid].mean()) if valid.any() else float("nan")


def nearest_per_group(dist: torch.Tensor, groups: Sequence[torch.Tensor]) -> torch.Tensor:
    """Column of the nearest gallery sequence within each group: ``dist: [b, G]`` -> ``int64 [b, n_groups]``.

    ``groups[g]`` holds the gallery columns of group ``g`` (e.g. one gallery view); an empty group
    gives ``-1``. Ties go to the earlier column.
    """
    out = torch.full((dist.shape[0], len(groups)), -1, dtype=torch.int64)
    for g, cols in enumerate(groups):
        if len(cols):
            cols = cols.to(dist.device)  # groups are built on the CPU; the distances may be on a GPU
            out[:, g] = cols[torch.argmin(dist.index_select(1, cols), dim=1)].cpu()
    return out
