"""A map-style dataset over any ``SequenceSource`` and a ``DataLoader`` factory for training and inference."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from workbench.data._collate import Sample, collate, cut_frames
from workbench.data._errors import DataError
from workbench.data._records import SequenceSource, label_map
from workbench.data._sampling import FRAME_SAMPLING, InferenceSampler, TripletSampler, sample_frame_indices

if TYPE_CHECKING:
    from torch.utils.data import DataLoader


class SequenceDataset:
    """Serves ``Sample``s: frames picked by ``sampling`` from ``source.load(i)``, then ``transform``.

    Frame picks draw from a generator seeded by ``seed`` in the main process, and by the worker
    seed (derived from the DataLoader's ``generator``) inside workers, so a seeded loader repeats.
    """

    def __init__(
        self,
        source: SequenceSource,
        sampling: str = "fixed_ordered",
        frames: int = 30,
        skip: int = 0,
        seed: int = 0,
        transform: Callable[[np.ndarray], np.ndarray] = cut_frames,
    ) -> None:
        if sampling not in FRAME_SAMPLING:
            raise DataError(f"sampling={sampling!r}: expected one of {', '.join(FRAME_SAMPLING)}")
        self.source, self.sampling, self.frames, self.skip = source, sampling, frames, skip
        self.seed, self.transform = seed, transform
        self.label_map = label_map(r.id for r in source.records)
        self._rng: np.random.Generator | None = None

    def __len__(self) -> int:
        return len(self.source)

    def _generator(self) -> np.random.Generator:
        if self._rng is None:
            from torch.utils.data import get_worker_info

            info = get_worker_info()
            self._rng = np.random.default_rng([self.seed] if info is None else [self.seed, info.seed])
        return self._rng

    def __getitem__(self, index: int) -> Sample:
        seq = self.source.load(index)
        if self.sampling != "all_ordered":
            seq = seq[sample_frame_indices(len(seq), self.sampling, self._generator(), self.frames, self.skip)]
        record = self.source.records[index]
        return Sample(self.transform(seq), self.label_map[record.id], record.id, record.type, record.view)


def build_loader(
    source: SequenceSource,
    *,
    train: bool,
    batch_size: tuple[int, int] | int,
    frames: int = 30,
    sampling: str | None = None,
    skip: int = 0,
    num_workers: int = 0,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    start_step: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A ``DataLoader`` yielding ``Batch``es: endless P x K batches if ``train``, else every sequence once.

    Training takes ``batch_size=(P, K)`` and ``fixed_ordered`` frames by default; inference an int
    batch size and ``all_ordered``. Workers open the source themselves (a packed store maps its file
    lazily in each worker); ``seed`` fixes both the batch stream and the frame picks.
    """
    import torch
    from torch.utils.data import DataLoader

    sampler: TripletSampler | InferenceSampler
    if train:
        if isinstance(batch_size, int):
            raise DataError(f"batch_size={batch_size}: training needs (P, K), e.g. (8, 8)")
        sampler = TripletSampler(source, batch_size, seed=seed, rank=rank, world_size=world_size,
                                 start_step=start_step)
    else:
        if not isinstance(batch_size, int):
            raise DataError(f"batch_size={batch_size}: inference takes one int, sequences per batch")
        sampler = InferenceSampler(len(source), batch_size, rank=rank, world_size=world_size)
    dataset = SequenceDataset(
        source,
        sampling=sampling or ("fixed_ordered" if train else "all_ordered"),
        frames=frames,
        skip=skip,
        seed=seed,
    )
    return DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=num_workers,
        pin_memory=pin_memory,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=num_workers > 0,
    )
