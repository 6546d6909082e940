"""Triplet and inference samplers, and frame sampling, as OpenGait users know them."""

from __future__ import annotations

from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest

from workbench.data import DataError, InferenceSampler, OpenGaitDataset, TripletSampler, sample_frame_indices


def _ids(counts: dict[str, int]) -> list[str]:
    return [identity for identity, n in counts.items() for _ in range(n)]


def test_each_batch_has_p_ids_with_k_sequences_each() -> None:
    ids = _ids({f"{i:03d}": 10 for i in range(12)})
    for batch in islice(TripletSampler(ids, (4, 3), seed=1), 20):
        assert len(batch) == 12
        per_id = Counter(ids[i] for i in batch)
        assert len(per_id) == 4 and set(per_id.values()) == {3}
        assert len(set(batch)) == 12, "without replacement when an id has enough sequences"


def test_ids_with_fewer_than_k_sequences_are_sampled_with_replacement() -> None:
    ids = _ids({"a": 2, "b": 2, "c": 2})
    for batch in islice(TripletSampler(ids, (3, 4), seed=0), 5):
        per_id = Counter(ids[i] for i in batch)
        assert per_id == Counter({"a": 4, "b": 4, "c": 4})


def test_stream_is_endless_and_deterministic_under_a_seed() -> None:
    ids = _ids({f"{i}": 5 for i in range(8)})
    first = list(islice(TripletSampler(ids, (2, 2), seed=7), 50))
    again = list(islice(TripletSampler(ids, (2, 2), seed=7), 50))
    other = list(islice(TripletSampler(ids, (2, 2), seed=8), 50))
    assert first == again and first != other
    resumed = list(islice(TripletSampler(ids, (2, 2), seed=7, start_step=30), 20))
    assert resumed == first[30:]
    # Over many batches every id shows up.
    assert {ids[i] for batch in first for i in batch} == set(ids)


def test_ranks_get_disjoint_slices_that_rebuild_the_global_batch() -> None:
    ids = _ids({f"{i}": 6 for i in range(10)})
    single = TripletSampler(ids, (4, 4), seed=3)
    shards = [TripletSampler(ids, (4, 4), seed=3, rank=r, world_size=4) for r in range(4)]
    for step, parts in enumerate(islice(zip(*shards, strict=True), 10)):
        assert all(len(part) == 4 for part in parts)
        assert [i for part in parts for i in part] == single.global_batch(step)
        assert len({i for part in parts for i in part}) == 16


def test_triplet_sampler_rejects_impossible_settings() -> None:
    ids = _ids({"a": 3, "b": 3})
    with pytest.raises(DataError, match="P=3 ids per batch, but the data has only 2 ids"):
        TripletSampler(ids, (3, 2))
    with pytest.raises(DataError, match="does not split evenly over world_size=4"):
        TripletSampler(ids, (2, 3), world_size=4)
    with pytest.raises(DataError, match="rank=2, world_size=2"):
        TripletSampler(ids, (2, 2), rank=2, world_size=2)


def test_triplet_sampler_reads_ids_from_a_source(opengait_root: Path) -> None:
    source = OpenGaitDataset(opengait_root, subset="train")
    batch = next(iter(TripletSampler(source, (4, 2))))
    assert len({source.records[i].id for i in batch}) == 4


@pytest.mark.parametrize(("size", "batch", "world"), [(10, 3, 1), (10, 3, 2), (7, 2, 4), (8, 4, 2), (1, 1, 3)])
def test_inference_sampler_covers_everything_in_order(size: int, batch: int, world: int) -> None:
    samplers = [InferenceSampler(size, batch, rank=r, world_size=world) for r in range(world)]
    per_rank = [[i for b in s for i in b] for s in samplers]
    assert len({len(s) for s in samplers}) == 1, "every rank takes the same number of steps"
    assert all(len(b) == batch for s in samplers for b in list(s)[: len(s) - 1])
    if world > 1:
        assert all(len(b) == batch for s in samplers for b in s), "ranks all-gather equal batches"
        assert samplers[0].total_size % (batch * world) == 0
    else:
        assert samplers[0].padding == 0
    assert samplers[0].padding == samplers[0].total_size - size
    merged = samplers[0].merge([np.asarray(p) for p in per_rank])
    assert merged.tolist() == list(range(size))
    if world == 1:
        assert per_rank[0][:size] == list(range(size))


def test_inference_merge_accepts_tensors() -> None:
    import torch

    sampler = InferenceSampler(5, 2, world_size=2)
    outputs = [torch.tensor([float(i) for b in InferenceSampler(5, 2, r, 2) for i in b]) for r in range(2)]
    assert sampler.merge(outputs).tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_fixed_ordered_takes_a_sorted_contiguous_window() -> None:
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(50):
        picked = sample_frame_indices(80, "fixed_ordered", rng, frames=30)
        assert len(picked) == 30 and np.all(np.diff(picked) == 1)
        starts.add(int(picked[0]))
    assert len(starts) > 10 and max(starts) <= 50


def test_fixed_ordered_repeats_short_sequences() -> None:
    rng = np.random.default_rng(1)
    picked = sample_frame_indices(7, "fixed_ordered", rng, frames=30)
    assert len(picked) == 30 and set(picked.tolist()) == set(range(7))
    # Consecutive positions of the repeated sequence: each step advances by one frame, wrapping at 7.
    assert np.all((np.diff(picked) % 7) == 1)


def test_fixed_ordered_with_skip_keeps_order_inside_a_wider_window() -> None:
    rng = np.random.default_rng(2)
    picked = sample_frame_indices(200, "fixed_ordered", rng, frames=30, skip=4)
    assert len(picked) == 30 and np.all(np.diff(picked) >= 1) and picked[-1] - picked[0] <= 33


def test_fixed_unordered_and_all_ordered() -> None:
    rng = np.random.default_rng(3)
    unordered = sample_frame_indices(100, "fixed_unordered", rng, frames=30)
    assert len(unordered) == 30 and len(set(unordered.tolist())) == 30
    assert np.any(np.diff(unordered) < 0)
    short = sample_frame_indices(4, "fixed_unordered", rng, frames=30)
    assert len(short) == 30 and set(short.tolist()) <= set(range(4))
    assert sample_frame_indices(12, "all_ordered", rng).tolist() == list(range(12))
    with pytest.raises(DataError, match="frame sampling 'random'"):
        sample_frame_indices(12, "random", rng)
