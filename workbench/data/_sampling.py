"""Batch samplers (P x K triplet batches, ordered inference batches) and per-sequence frame sampling.

Both samplers are batch samplers for ``torch.utils.data.DataLoader(batch_sampler=...)``: they yield
lists of sequence indices. Neither imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from workbench.data._errors import DataError
from workbench.data._records import SequenceSource

FRAME_SAMPLING = ("fixed_ordered", "fixed_unordered", "all_ordered")


def _check_rank(rank: int, world_size: int) -> None:
    if world_size < 1 or not 0 <= rank < world_size:
        raise DataError(f"rank={rank}, world_size={world_size}: need world_size >= 1 and 0 <= rank < world_size")


def _ids_of(source: SequenceSource | Sequence[str]) -> list[str]:
    if isinstance(source, SequenceSource):
        return [record.id for record in source.records]
    return [str(identity) for identity in source]


class TripletSampler:
    """Endless P x K batches: ``P`` distinct ids, ``K`` sequences each (with replacement when fewer).

    Batch ``b`` depends only on ``(seed, b)``, so every rank draws the same global batch and
    keeps its own contiguous slice of ``P * K / world_size`` indices; ``start_step`` resumes the
    stream where a run stopped.

    Args:
        source: a ``SequenceSource`` or the id of every sequence, by index.
        batch_size: ``(P, K)``.
        seed: seed of the stream.
        rank, world_size: this process's share of each global batch.
        start_step: index of the first batch to yield.
    """

    def __init__(
        self,
        source: SequenceSource | Sequence[str],
        batch_size: tuple[int, int],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_step: int = 0,
    ) -> None:
        ids = _ids_of(source)
        p, k = (int(v) for v in batch_size)
        if p < 1 or k < 1:
            raise DataError(f"batch_size={batch_size}: P and K must be at least 1")
        _check_rank(rank, world_size)
        if (p * k) % world_size:
            raise DataError(
                f"batch_size={batch_size}: P*K={p * k} does not split evenly over world_size={world_size}; "
                "choose P*K divisible by the number of processes"
            )
        by_id: dict[str, list[int]] = {}
        for index, identity in enumerate(ids):
            by_id.setdefault(identity, []).append(index)
        if len(by_id) < p:
            raise DataError(
                f"batch_size={batch_size}: P={p} ids per batch, but the data has only {len(by_id)} ids; "
                "lower P or use more training ids"
            )
        self.batch_size = (p, k)
        self.seed, self.rank, self.world_size, self.start_step = seed, rank, world_size, start_step
        self._ids = sorted(by_id)
        self._indices = [np.asarray(by_id[identity], dtype=np.int64) for identity in self._ids]

    def global_batch(self, step: int) -> list[int]:
        """All ``P * K`` indices of batch ``step`` (before sharding), grouped by id."""
        p, k = self.batch_size
        rng = np.random.default_rng([self.seed, step])
        batch: list[int] = []
        for slot in rng.choice(len(self._ids), size=p, replace=False).tolist():
            pool = self._indices[slot]
            # Short pools draw with replacement; otherwise the first k of a random permutation
            # (a sample without replacement, cheaper than choice()).
            picked = rng.integers(0, len(pool), size=k) if len(pool) < k else rng.permutation(len(pool))[:k]
            batch.extend(pool[picked].tolist())
        return batch

    def __iter__(self) -> Iterator[list[int]]:
        share = self.batch_size[0] * self.batch_size[1] // self.world_size
        step = self.start_step
        while True:
            yield self.global_batch(step)[self.rank * share : (self.rank + 1) * share]
            step += 1


class InferenceSampler:
    """Every index once, in order, in batches of ``batch_size`` per rank.

    With one process the last batch may be short and nothing is padded. With ``W`` processes,
    global batch ``g`` covers positions ``g*B*W .. (g+1)*B*W`` (``B`` batch size) and rank ``r``
    takes the ``r``-th block of ``B``; positions past the data wrap to its start, so every rank
    steps (and all-gathers) together. ``merge`` puts gathered outputs back in index order, unpadded.
    """

    def __init__(self, size: int | SequenceSource, batch_size: int = 1, rank: int = 0, world_size: int = 1) -> None:
        n = size if isinstance(size, int) else len(size)
        if n < 1:
            raise DataError("InferenceSampler: the data is empty; nothing to evaluate")
        if batch_size < 1:
            raise DataError(f"batch_size={batch_size}: must be at least 1")
        _check_rank(rank, world_size)
        self.size, self.batch_size, self.rank, self.world_size = n, batch_size, rank, world_size
        span = batch_size * world_size
        self.total_size = n if world_size == 1 else math.ceil(n / span) * span
        self.padding = self.total_size - n

    def positions(self, rank: int | None = None) -> np.ndarray:
        """Global positions ``int64 [total_size / world_size]`` that ``rank`` yields, in its order."""
        rank = self.rank if rank is None else rank
        if self.world_size == 1:
            return np.arange(self.size, dtype=np.int64)
        starts = np.arange(0, self.total_size, self.batch_size * self.world_size) + rank * self.batch_size
        return (starts[:, None] + np.arange(self.batch_size)[None, :]).reshape(-1)

    def __len__(self) -> int:
        return math.ceil(self.total_size / (self.batch_size * self.world_size))

    def __iter__(self) -> Iterator[list[int]]:
        indices = self.positions() % self.size
        for start in range(0, len(indices), self.batch_size):
            yield [int(i) for i in indices[start : start + self.batch_size]]

    def merge(self, per_rank: Sequence[Any]) -> Any:
        """Outputs gathered from every rank (``per_rank[r]``: rank ``r``'s rows in its order) in index order."""
        if len(per_rank) != self.world_size:
            raise DataError(f"merge: got outputs of {len(per_rank)} ranks, expected {self.world_size}")
        positions = np.concatenate([self.positions(r) for r in range(self.world_size)])
        order = np.argsort(positions, kind="stable")[: self.size]
        if all(isinstance(part, np.ndarray) for part in per_rank):
            return np.concatenate(list(per_rank))[order]
        import torch

        return torch.cat(list(per_rank))[torch.from_numpy(order)]


def sample_frame_indices(
    n_frames: int, mode: str, rng: np.random.Generator, frames: int = 30, skip: int = 0
) -> np.ndarray:
    """Which frames of an ``n_frames`` sequence to use: ``int64 [frames]`` (``[n_frames]`` for ``all_ordered``).

    ``fixed_ordered``: ``frames`` sorted frames out of a random contiguous window of ``frames + skip``
    (short sequences are repeated end to end first); ``fixed_unordered``: ``frames`` random frames
    (with replacement when fewer); ``all_ordered``: every frame in order.
    """
    if n_frames < 1:
        raise DataError("cannot sample frames from a sequence with zero frames")
    if mode == "all_ordered":
        return np.arange(n_frames, dtype=np.int64)
    if frames < 1 or skip < 0:
        raise DataError(f"frames={frames}, skip={skip}: need frames >= 1 and skip >= 0")
    if mode == "fixed_unordered":
        return rng.choice(n_frames, size=frames, replace=n_frames < frames).astype(np.int64)
    if mode == "fixed_ordered":
        window = frames + skip
        span = n_frames * math.ceil(window / n_frames)
        start = int(rng.integers(0, span - window + 1))
        if skip == 0 and start + frames <= n_frames:
            return np.arange(start, start + frames, dtype=np.int64)
        picked = np.arange(frames) if skip == 0 else np.sort(rng.choice(window, size=frames, replace=False))
        # Positions in the sequence repeated end to end until it covers the window.
        return (start + picked) % n_frames
    raise DataError(f"frame sampling {mode!r}: expected one of {', '.join(FRAME_SAMPLING)}")
