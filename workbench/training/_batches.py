"""What the trainer consumes: a stream of batches that is a pure function of (seed, step, rank)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch

from workbench.training._distributed import DistributedContext


class TrainBatch(NamedTuple):
    """One rank's share of a batch: ``seqs [n, s, h, w]``, ``labels int64 [n]``, ``seqL int64 [n]`` or None.

    ``views``: view class per sequence ``int64 [n]`` (for models with a view classifier) or None.
    """

    seqs: torch.Tensor
    labels: torch.Tensor
    seqL: torch.Tensor | None
    views: torch.Tensor | None = None


@runtime_checkable
class TrainData(Protocol):
    """Training data as the trainer sees it.

    ``batches(start_step, context)`` yields the batches of steps ``start_step + 1``, ``start_step + 2``,
    ... for this rank. The batch of a step must depend only on the seed, the step and the rank, never
    on how many steps ran before in this process: that is what makes a resumed run draw the same data
    as an uninterrupted one.
    """

    @property
    def num_classes(self) -> int:
        """Number of training identities (the model's class count)."""
        ...

    def batches(self, start_step: int, context: DistributedContext) -> Iterator[TrainBatch]:
        """Endless iterator over this rank's batches, starting after ``start_step``."""
        ...


def step_rng(seed: int, step: int, stream: int = 0) -> np.random.Generator:
    """The NumPy generator of one step (``stream`` separates independent uses within the step)."""
    return np.random.default_rng([seed % 2**32, step, stream])


def shard_slice(batch_size: int, context: DistributedContext) -> slice:
    """This rank's contiguous slice of a global batch; the global batch must split evenly."""
    if batch_size % context.world_size:
        raise ValueError(
            f"batch of {batch_size} sequences (data.p * data.k) does not split over {context.world_size} "
            "processes; choose p * k divisible by the number of processes"
        )
    share = batch_size // context.world_size
    return slice(context.rank * share, (context.rank + 1) * share)
