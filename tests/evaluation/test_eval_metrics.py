"""Rank-k, mAP and mINP on cases worked by hand, and against a sort-based reference on random data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from workbench.evaluation import (
    ProbeScores,
    cmc,
    mean_ap,
    mean_inp,
    nearest_per_group,
    positive_ranks,
    probe_scores,
)


def _labels(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.int64)


def test_hand_worked_ap_inp_and_first_hit() -> None:
    # Gallery labels a=0, b=1, c=2 at distances 0.1, 0.5, 0.3, 0.2, 0.9.
    # Sorted: g0(a) g3(c) g2(a) g1(b) g4(b).
    # Probe a: positives at ranks 1, 3 -> AP = (1/1 + 2/3) / 2 = 5/6, INP = 2/3, first hit 1.
    # Probe b: positives at ranks 4, 5 -> AP = (1/4 + 2/5) / 2 = 0.325, INP = 2/5, first hit 4.
    # Probe d=3: no positive.
    row = [0.1, 0.5, 0.3, 0.2, 0.9]
    dist = torch.tensor([row, row, row])
    scores = probe_scores(dist, _labels([0, 1, 3]), _labels([0, 1, 0, 2, 1]))
    assert scores.first_hit.tolist() == [1, 4, 0]
    np.testing.assert_allclose(scores.ap, [5 / 6, 0.325, 0.0])
    np.testing.assert_allclose(scores.inp, [2 / 3, 0.4, 0.0])
    assert scores.positives.tolist() == [2, 2, 0]
    assert scores.valid.tolist() == [True, True, False]
    assert cmc(scores, [1, 3, 4]) == {1: 50.0, 3: 50.0, 4: 100.0}
    assert cmc(scores, [1, 4], valid_only=False) == pytest.approx({1: 100 / 3, 4: 200 / 3})
    assert mean_ap(scores) == pytest.approx(100 * (5 / 6 + 0.325) / 2)
    assert mean_inp(scores) == pytest.approx(100 * (2 / 3 + 0.4) / 2)


def test_ties_rank_like_a_stable_sort() -> None:
    # All distances equal: the ranking is gallery order, so the positive at column 2 has rank 3.
    dist = torch.zeros(1, 4)
    rows, ranks = positive_ranks(dist, _labels([7]), _labels([1, 2, 7, 3]))
    assert rows.tolist() == [0] and ranks.tolist() == [3]


def _sorted_reference(dist: np.ndarray, p_labels: np.ndarray, g_labels: np.ndarray) -> ProbeScores:
    first, ap, inp, pos = [], [], [], []
    for row, label in zip(dist, p_labels, strict=True):
        matches = g_labels[np.argsort(row, kind="stable")] == label
        hits = np.flatnonzero(matches) + 1
        pos.append(len(hits))
        if len(hits):
            first.append(hits[0])
            ap.append(np.mean(np.arange(1, len(hits) + 1) / hits))
            inp.append(len(hits) / hits[-1])
        else:
            first.append(0)
            ap.append(0.0)
            inp.append(0.0)
    return ProbeScores(np.array(first), np.array(ap), np.array(inp), np.array(pos))


def test_matches_sorting_reference_with_many_ties() -> None:
    rng = np.random.default_rng(0)
    dist = rng.integers(0, 6, size=(40, 57)).astype(np.float32)  # coarse values: ties everywhere
    p_labels = rng.integers(0, 12, size=40)
    g_labels = rng.integers(0, 10, size=57)
    got = probe_scores(torch.from_numpy(dist), torch.from_numpy(p_labels), torch.from_numpy(g_labels))
    want = _sorted_reference(dist, p_labels, g_labels)
    np.testing.assert_array_equal(got.first_hit, want.first_hit)
    np.testing.assert_array_equal(got.positives, want.positives)
    np.testing.assert_allclose(got.ap, want.ap)
    np.testing.assert_allclose(got.inp, want.inp)
    assert (~got.valid).any(), "the case should include probes without a gallery match"


def test_concat_keeps_chunk_order() -> None:
    a = probe_scores(torch.tensor([[0.0, 1.0]]), _labels([1]), _labels([0, 1]))
    b = probe_scores(torch.tensor([[0.0, 1.0]]), _labels([0]), _labels([0, 1]))
    joined = ProbeScores.concat([a, b])
    assert joined.first_hit.tolist() == [2, 1]
    assert len(ProbeScores.concat([])) == 0


def test_nearest_per_group() -> None:
    dist = torch.tensor([[0.5, 0.2, 0.9, 0.1], [0.3, 0.3, 0.0, 0.8]])
    groups = [torch.tensor([0, 1]), torch.tensor([2, 3]), torch.tensor([], dtype=torch.int64)]
    assert nearest_per_group(dist, groups).tolist() == [[1, 3, -1], [0, 2, -1]]


def test_rank_must_be_positive() -> None:
    scores = probe_scores(torch.zeros(1, 1), _labels([0]), _labels([0]))
    with pytest.raises(ValueError, match="1-based"):
        cmc(scores, [0])
