"""The cutting transform and ``collate``: samples to a padded ``Batch`` of torch tensors."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from workbench.data._errors import DataError

if TYPE_CHECKING:
    import torch


def cut_width(width: int) -> int:
    """Columns removed on each side by the cutting transform: ``width // 64 * 10`` (64 -> 44, 128 -> 88)."""
    return width // 64 * 10


def cut_frames(seq: np.ndarray) -> np.ndarray:
    """OpenGait's cutting transform: ``seq: uint8 [s, h, w]`` -> ``float32 [s, h, w - 2*cut]`` in [0, 1]."""
    if seq.ndim != 3:
        raise DataError(f"cut_frames: expected a sequence [frames, h, w], got shape {list(seq.shape)}")
    cut = cut_width(seq.shape[2])
    kept = seq[:, :, cut : seq.shape[2] - cut] if cut else seq
    return kept.astype(np.float32) / np.float32(255.0)


class Sample(NamedTuple):
    """One sequence ready for batching: ``seq: float32 [s, h, w]`` plus its label and metadata."""

    seq: np.ndarray
    label: int
    id: str
    type: str
    view: str


@dataclass
class Batch:
    """A batch: ``seqs: float32 [n, s, h, w]``, ``labels: int64 [n]``, ``seqL: int64 [n]`` or ``None``."""

    seqs: torch.Tensor
    labels: torch.Tensor
    seqL: torch.Tensor | None
    ids: list[str]
    types: list[str]
    views: list[str]

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: Any, non_blocking: bool = False) -> Batch:
        """The same batch with its tensors on ``device``."""
        return Batch(
            self.seqs.to(device, non_blocking=non_blocking),
            self.labels.to(device, non_blocking=non_blocking),
            None if self.seqL is None else self.seqL.to(device, non_blocking=non_blocking),
            self.ids,
            self.types,
            self.views,
        )

    def pin_memory(self) -> Batch:
        """Pinned host copies of the tensors (called by ``DataLoader(pin_memory=True)``)."""
        return Batch(
            self.seqs.pin_memory(),
            self.labels.pin_memory(),
            None if self.seqL is None else self.seqL.pin_memory(),
            self.ids,
            self.types,
            self.views,
        )


def collate(samples: Sequence[Sample]) -> Batch:
    """Stack samples into a ``Batch``, zero-padding to the longest with ``seqL`` (``None`` if all equal)."""
    import torch

    if not samples:
        raise DataError("collate: empty batch")
    shapes = {sample.seq.shape[1:] for sample in samples}
    if len(shapes) != 1:
        raise DataError(f"collate: frames of different sizes in one batch: {sorted(shapes)}")
    for sample in samples:
        if sample.seq.dtype != np.float32:
            raise DataError(
                f"collate: sequence {sample.id}/{sample.type}/{sample.view} is {sample.seq.dtype}; "
                "apply cut_frames (float32 in [0, 1]) before collating"
            )
    lengths = [len(sample.seq) for sample in samples]
    longest = max(lengths)
    seqs = np.zeros((len(samples), longest, *shapes.pop()), dtype=np.float32)
    for row, sample in enumerate(samples):
        seqs[row, : len(sample.seq)] = sample.seq
    seq_lengths = None if len(set(lengths)) == 1 else torch.tensor(lengths, dtype=torch.int64)
    return Batch(
        seqs=torch.from_numpy(seqs),
        labels=torch.tensor([sample.label for sample in samples], dtype=torch.int64),
        seqL=seq_lengths,
        ids=[sample.id for sample in samples],
        types=[sample.type for sample in samples],
        views=[sample.view for sample in samples],
    )
