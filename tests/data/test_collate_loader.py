"""Cutting transform, collate and the DataLoader factory over OpenGait and packed sources."""

from __future__ import annotations

from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data import (
    DataError,
    OpenGaitDataset,
    Sample,
    SequenceDataset,
    build_loader,
    collate,
    cut_frames,
    cut_width,
    pack_dataset,
)


def test_cutting_removes_w_over_64_times_10_columns_and_scales() -> None:
    assert (cut_width(64), cut_width(128), cut_width(44)) == (10, 20, 0)
    seq = np.arange(2 * 64 * 64, dtype=np.int64).reshape(2, 64, 64).astype(np.uint8)
    out = cut_frames(seq)
    assert out.shape == (2, 64, 44) and out.dtype == np.float32
    assert np.allclose(out, seq[:, :, 10:54] / 255.0)
    assert cut_frames(np.full((1, 128, 128), 255, np.uint8)).shape == (1, 128, 88)
    assert cut_frames(np.full((1, 128, 128), 255, np.uint8)).max() == 1.0


def _sample(frames: int, value: float, identity: str = "001") -> Sample:
    return Sample(np.full((frames, 4, 3), value, np.float32), int(identity), identity, "nm-01", "090")


def test_collate_equal_lengths_has_no_seql() -> None:
    batch = collate([_sample(5, 0.5, "001"), _sample(5, 0.25, "002")])
    assert batch.seqs.shape == (2, 5, 4, 3) and batch.seqs.dtype == torch.float32
    assert batch.seqL is None
    assert batch.labels.tolist() == [1, 2] and batch.labels.dtype == torch.int64
    assert (batch.ids, batch.types, batch.views) == (["001", "002"], ["nm-01"] * 2, ["090"] * 2)


def test_collate_pads_to_the_longest_with_seql() -> None:
    batch = collate([_sample(2, 1.0), _sample(5, 0.5), _sample(3, 0.25)])
    assert batch.seqs.shape == (3, 5, 4, 3)
    assert batch.seqL is not None and batch.seqL.tolist() == [2, 5, 3] and batch.seqL.dtype == torch.int64
    assert torch.all(batch.seqs[0, :2] == 1.0) and torch.all(batch.seqs[0, 2:] == 0)
    assert torch.all(batch.seqs[2, 3:] == 0)
    assert len(batch) == 3 and batch.to("cpu").seqL is not None


def test_collate_rejects_untransformed_or_mismatched_frames() -> None:
    raw = Sample(np.zeros((3, 4, 3), np.uint8), 0, "001", "nm-01", "000")
    with pytest.raises(DataError, match="001/nm-01/000 is uint8; apply cut_frames"):
        collate([raw])
    with pytest.raises(DataError, match="frames of different sizes"):
        collate([_sample(2, 0.0), Sample(np.zeros((2, 5, 3), np.float32), 0, "9", "t", "v")])


def test_sequence_dataset_samples_and_transforms(opengait_root: Path) -> None:
    source = OpenGaitDataset(opengait_root, subset="test")
    sample = SequenceDataset(source, "fixed_ordered", frames=30)[0]
    assert sample.seq.shape == (30, 64, 44) and sample.seq.dtype == np.float32
    assert sample.label == 0 and sample.id == "005"
    whole = SequenceDataset(source, "all_ordered")[1]
    assert np.allclose(whole.seq, cut_frames(source.load(1)))


def test_training_loader_with_workers_is_seeded_and_maps_lazily(opengait_root: Path, tmp_path: Path) -> None:
    store = pack_dataset(OpenGaitDataset(opengait_root, subset="train"), tmp_path / "train", progress=False)

    def first_batches(seed: int) -> list[torch.Tensor]:
        loader = build_loader(store, train=True, batch_size=(2, 3), frames=8, num_workers=2, seed=seed)
        batches = list(islice(iter(loader), 3))
        for batch in batches:
            assert batch.seqs.shape == (6, 8, 64, 44) and batch.seqL is None
            assert len(set(batch.ids)) == 2 and batch.labels.max() < 4
        return [b.seqs for b in batches]

    one, two, other = first_batches(5), first_batches(5), first_batches(6)
    assert all(torch.equal(a, b) for a, b in zip(one, two, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(one, other, strict=True))
    assert store._frames is None, "workers open the memory map themselves"


def test_inference_loader_yields_every_sequence_once_in_order(opengait_root: Path) -> None:
    source = OpenGaitDataset(opengait_root, subset="test", views=["000"])
    batches = list(build_loader(source, train=False, batch_size=4))
    keys = [f"{i}-{t}-{v}" for b in batches for i, t, v in zip(b.ids, b.types, b.views, strict=True)]
    assert keys == [r.key for r in source.records]
    first = batches[0]
    lengths = [len(source.load(i)) for i in range(4)]
    if len(set(lengths)) > 1:
        assert first.seqL is not None and first.seqL.tolist() == lengths
    assert first.seqs.shape[1] == max(lengths)


def test_loader_argument_errors(opengait_root: Path) -> None:
    source = OpenGaitDataset(opengait_root)
    with pytest.raises(DataError, match=r"training needs \(P, K\)"):
        build_loader(source, train=True, batch_size=8)
    with pytest.raises(DataError, match="sampling='every'"):
        build_loader(source, train=False, batch_size=1, sampling="every")
