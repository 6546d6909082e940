"""Embedding extraction: batching by length, source order, frame caps, model mode, end-to-end evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from workbench.data import ArraySource, SequenceRecord, save_pickle
from workbench.evaluation import EmbeddingSet, evaluate_model, extract_embeddings, make_evaluator, probe_flags
from workbench.models import ModelOutput, create_model


class RowProfileModel(nn.Module):
    """Per-sequence mean and max over valid frames of each row's mean: ``[n, s, h, w] -> [n, h, 2]``."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.calls: list[tuple[int, int]] = []

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> ModelOutput:
        self.calls.append((x.shape[0], x.shape[1]))
        rows = x.mean(dim=3)  # [n, s, h]
        lengths = seqL if seqL is not None else torch.full((x.shape[0],), x.shape[1])
        valid = (torch.arange(x.shape[1]).reshape(1, -1) < lengths.reshape(-1, 1)).unsqueeze(-1)
        mean = (rows * valid).sum(1) / lengths.reshape(-1, 1)
        peak = rows.masked_fill(~valid, -1.0).amax(1)
        features = torch.stack([mean, peak], dim=-1) * self.scale
        return ModelOutput(features, features, features)


class ListSource(ArraySource):
    """An in-memory ``SequenceSource``; ``with_lengths`` exposes lengths like a packed store."""

    def __init__(self, sequences: list[np.ndarray], keys: list[tuple[str, str, str]], with_lengths: bool = False):
        super().__init__(sequences, [SequenceRecord(i, t, v, ()) for i, t, v in keys])
        if with_lengths:
            self.lengths = np.array([len(s) for s in sequences], dtype=np.int64)


def random_source(count: int = 11, with_lengths: bool = False, seed: int = 0) -> ListSource:
    rng = np.random.default_rng(seed)
    sequences = [rng.integers(0, 256, size=(int(rng.integers(3, 15)), 16, 16), dtype=np.uint8) for _ in range(count)]
    keys = [(f"{i % 4:03d}", "nm-01", f"{i:03d}") for i in range(count)]
    return ListSource(sequences, keys, with_lengths)


def one_by_one(model: nn.Module, source: ListSource) -> np.ndarray:
    return extract_embeddings(model, source, batch_size=1, progress=False).embeddings


@pytest.mark.parametrize("with_lengths", [False, True])
def test_batched_equals_one_at_a_time_in_source_order(with_lengths: bool) -> None:
    source = random_source(with_lengths=with_lengths)
    model = RowProfileModel()
    batched = extract_embeddings(model, source, batch_size=4, progress=False)
    assert batched.embeddings.shape == (11, 16, 2) and batched.embeddings.dtype == np.float32
    np.testing.assert_allclose(batched.embeddings, one_by_one(model, source), atol=1e-6)
    assert batched.views.tolist() == [f"{i:03d}" for i in range(11)]
    assert batched.ids.tolist()[:5] == ["000", "001", "002", "003", "000"]


def test_batches_group_similar_lengths() -> None:
    source = random_source(count=16, with_lengths=True)
    model = RowProfileModel()
    extract_embeddings(model, source, batch_size=4, progress=False)
    lengths = sorted((len(s) for s in source.sequences), reverse=True)
    # Longest first, so each batch is padded only to the longest of its own group of four.
    assert [frames for _, frames in model.calls] == lengths[::4]


def test_frames_cap_uses_the_first_frames() -> None:
    source = random_source()
    model = RowProfileModel()
    capped = extract_embeddings(model, source, batch_size=3, frames=3, progress=False)
    trimmed = ListSource([s[:3] for s in source.sequences], [(r.id, r.type, r.view) for r in source.records])
    np.testing.assert_allclose(capped.embeddings, one_by_one(model, trimmed), atol=1e-6)


def test_model_mode_is_restored_and_no_grad_is_kept() -> None:
    model = RowProfileModel().train()
    out = extract_embeddings(model, random_source(), progress=False)
    assert model.training
    assert isinstance(out.embeddings, np.ndarray)


def test_bad_arguments_and_outputs() -> None:
    source = random_source()
    with pytest.raises(ValueError, match="batch_size=0"):
        extract_embeddings(RowProfileModel(), source, batch_size=0)
    with pytest.raises(ValueError, match="frames=0"):
        extract_embeddings(RowProfileModel(), source, frames=0)

    class Plain(nn.Module):
        def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
            return x

    with pytest.raises(TypeError, match="ModelOutput"):
        extract_embeddings(Plain(), source, progress=False)


def test_real_hstl_batch_matches_single_runs() -> None:
    torch.manual_seed(0)
    model = create_model("hstl-small")
    rng = np.random.default_rng(1)
    sequences = [rng.integers(0, 256, size=(n, 64, 64), dtype=np.uint8) for n in (4, 3, 6)]
    source = ListSource(sequences, [("001", "nm-01", "000"), ("002", "nm-01", "000"), ("003", "nm-01", "000")])
    batched = extract_embeddings(model, source, batch_size=3, progress=False)
    assert batched.embeddings.shape[0] == 3 and batched.embeddings.shape[2] == 73
    np.testing.assert_allclose(batched.embeddings, one_by_one(model, source), atol=1e-4)


def write_identity_dataset(root: Path) -> None:
    """An OpenGait-layout set where each id has its own row pattern, with a Gait3D-style partition."""
    rng = np.random.default_rng(0)
    for ident in range(4):
        pattern = rng.integers(0, 256, size=(1, 64, 1), dtype=np.uint8)
        for seq_type in ("00", "01"):
            for view in ("a", "b"):
                frames = np.broadcast_to(pattern, (6 + ident, 64, 64)).copy()
                folder = root / f"{ident:03d}" / seq_type / view
                folder.mkdir(parents=True)
                save_pickle(frames, folder / f"{view}.pkl")
    partition = {"TRAIN_SET": ["000"], "TEST_SET": ["001", "002", "003"],
                 "PROBE_SET": ["001-00-a", "002-00-a", "003-00-b"]}
    (root / "partition.json").write_text(json.dumps(partition))


def test_evaluate_model_on_disk_gait3d_and_oumvlp(tmp_path: Path) -> None:
    write_identity_dataset(tmp_path)
    model = RowProfileModel()
    result, embeddings = evaluate_model(model, tmp_path, "gait3d", batch_size=4, progress=False)
    assert isinstance(embeddings, EmbeddingSet) and len(embeddings) == 12  # test ids only
    assert embeddings.probe is not None and int(embeddings.probe.sum()) == 3
    # A perfect model on every subject: the intervals collapse onto the figures.
    assert set(result.summary().values()) == {100.0}
    assert {k for k in result.summary() if "_ci_" not in k} == {"rank1", "rank5", "rank10", "map", "minp"}
    result, _ = evaluate_model(model, tmp_path, "oumvlp", progress=False)
    assert result.summary()["rank1_nm"] == 100.0
    evaluator = make_evaluator(tmp_path, "oumvlp", batch_size=2)
    assert evaluator(model, 10) == result.summary()


def test_probe_flags_need_a_probe_set(tmp_path: Path) -> None:
    source = random_source()
    with pytest.raises(ValueError, match="no partition to read PROBE_SET"):
        probe_flags(source)
    (tmp_path / "p.json").write_text(json.dumps({"TRAIN_SET": [], "TEST_SET": ["000"]}))
    with pytest.raises(ValueError, match="no PROBE_SET"):
        probe_flags(source, tmp_path / "p.json")


def test_bf16_autocast_gives_float32_embeddings_close_to_fp32() -> None:
    torch.manual_seed(0)
    model = create_model("hstl-small")
    rng = np.random.default_rng(2)
    sequences = [(rng.random((n, 64, 64)) > 0.5).astype(np.uint8) * 255 for n in (5, 7, 6)]
    source = ListSource(sequences, [("001", "nm-01", "000"), ("002", "nm-01", "000"), ("003", "nm-01", "000")])
    full = extract_embeddings(model, source, batch_size=3, progress=False).embeddings
    half = extract_embeddings(model, source, batch_size=3, progress=False, amp="bf16").embeddings
    assert half.dtype == np.float32
    assert not np.array_equal(half, full)  # the forward really ran in bf16
    cosine = (half * full).sum(1) / (np.linalg.norm(half, axis=1) * np.linalg.norm(full, axis=1))
    assert cosine.min() > 0.99  # per sequence and part: the same direction to bf16 rounding


def test_bad_precision_fails_before_any_work() -> None:
    model = RowProfileModel()
    with pytest.raises(ValueError, match="needs a CUDA device"):
        extract_embeddings(model, random_source(), amp="fp16", device="cpu", progress=False)
    with pytest.raises(ValueError, match="off, bf16, fp16"):
        extract_embeddings(model, random_source(), amp="fp8", progress=False)
    assert model.calls == []
