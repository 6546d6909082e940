"""Training batches: a pure function of (seed, step, rank), whatever the worker count or resume point."""

from __future__ import annotations

from dataclasses import replace
from itertools import islice
from pathlib import Path

import pytest
import torch
from training_toys import MemorySource, toy_config

from workbench.training import (
    DataConfig,
    DistributedContext,
    SourceTrainData,
    TrainBatch,
    build_train_data,
)


def _take(data: SourceTrainData, start: int, count: int, context: DistributedContext | None = None) -> list[TrainBatch]:
    return list(islice(data.batches(start, context or DistributedContext()), count))


def _same(a: TrainBatch, b: TrainBatch) -> bool:
    return torch.equal(a.seqs, b.seqs) and torch.equal(a.labels, b.labels)


def _data(tmp_path: Path, **changes: object) -> SourceTrainData:
    config = toy_config(tmp_path, data=replace(DataConfig(p=2, k=2, frames=4), **changes))  # type: ignore[arg-type]
    return SourceTrainData(MemorySource(), config.data, config.seed)


def test_batches_have_p_times_k_sequences_of_fixed_frames(tmp_path: Path) -> None:
    data = _data(tmp_path)
    batch = _take(data, 0, 1)[0]
    assert batch.seqs.shape == (4, 4, 16, 16) and batch.seqs.dtype == torch.float32
    assert batch.seqL is None
    assert float(batch.seqs.min()) >= 0.0 and float(batch.seqs.max()) <= 1.0
    labels = batch.labels.tolist()
    assert len(set(labels)) == 2 and all(labels.count(x) == 2 for x in set(labels))
    assert data.num_classes == 4


def test_resuming_the_stream_repeats_the_same_batches(tmp_path: Path) -> None:
    data = _data(tmp_path)
    straight = _take(data, 0, 4)
    resumed = _take(data, 2, 2)
    assert _same(straight[2], resumed[0]) and _same(straight[3], resumed[1])
    assert not _same(straight[0], straight[1])


def test_workers_do_not_change_the_batches(tmp_path: Path) -> None:
    in_process = _take(_data(tmp_path), 0, 3)
    with_workers = _take(_data(tmp_path, workers=1), 0, 3)
    assert all(_same(a, b) for a, b in zip(in_process, with_workers, strict=True))


def test_rank_shards_together_make_the_single_process_batch(tmp_path: Path) -> None:
    data = _data(tmp_path, sampler="fixed_unordered")
    whole = _take(data, 5, 1)[0]
    shards = [_take(data, 5, 1, DistributedContext(rank=r, world_size=2))[0] for r in range(2)]
    assert torch.equal(torch.cat([s.seqs for s in shards]), whole.seqs)
    assert torch.equal(torch.cat([s.labels for s in shards]), whole.labels)
    with pytest.raises(ValueError, match="divisible"):
        _take(data, 0, 1, DistributedContext(rank=0, world_size=3))


def test_all_ordered_batches_carry_lengths(tmp_path: Path) -> None:
    batches = _take(_data(tmp_path, sampler="all_ordered"), 0, 6)
    padded = [b for b in batches if b.seqL is not None]
    assert padded, "sequences of 6-9 frames should give some batches of mixed lengths"
    for batch in padded:
        assert batch.seqL is not None and int(batch.seqL.max()) == batch.seqs.shape[1]
        assert int(batch.seqL.min()) >= 6


def test_bad_data_settings_are_named(tmp_path: Path) -> None:
    config = toy_config(tmp_path / "run")
    with pytest.raises(FileNotFoundError, match=r"data\.path"):
        build_train_data(replace(config, data=replace(config.data, path=str(tmp_path / "nowhere"))),
                         DistributedContext())
    (tmp_path / "plain").mkdir()
    with pytest.raises(ValueError, match=r"data\.packed"):
        build_train_data(replace(config, data=replace(config.data, path=str(tmp_path / "plain"), packed=True)),
                         DistributedContext())
    with pytest.raises(ValueError, match=r"data\.synthetic"):
        build_train_data(replace(config, data=replace(config.data, synthetic="replace")), DistributedContext())
