"""Training batches from a dataset on disk (or the built-in synthetic set), resumable step by step."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from workbench.data import (
    TripletSampler,
    collate,
    cut_frames,
    is_packed_store,
    label_map,
    open_source,
    sample_frame_indices,
)
from workbench.data._collate import Sample
from workbench.data._records import SequenceSource
from workbench.training._batches import TrainBatch, shard_slice, step_rng
from workbench.training._config import DataConfig, TrainConfig
from workbench.training._distributed import DistributedContext, barrier

logger = logging.getLogger(__name__)


class _StepSampler:
    """Batch sampler yielding ``(index, step, slot)`` keys: the frames of each key are drawn from ``(seed, step, slot)``."""

    def __init__(self, sampler: TripletSampler, start_step: int, context: DistributedContext) -> None:
        self.sampler, self.start_step = sampler, start_step
        p, k = sampler.batch_size
        self.shard = shard_slice(p * k, context)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start_step + 1
        while True:
            # TripletSampler numbers batches from 0; step t (1-based) takes batch t - 1.
            indices = self.sampler.global_batch(step - 1)
            slots = range(len(indices))[self.shard]
            yield [(indices[slot], step, slot) for slot in slots]
            step += 1


class _StepDataset:
    """Serves ``Sample``s for ``(index, step, slot)`` keys; frame picks depend on the key only."""

    def __init__(self, source: SequenceSource, config: DataConfig, seed: int) -> None:
        self.source, self.config, self.seed = source, config, seed
        self.labels = label_map(r.id for r in source.records)
        self._cache: dict[int, np.ndarray] | None = {} if config.cache else None

    def _load(self, index: int) -> np.ndarray:
        if self._cache is None:
            return self.source.load(index)
        if index not in self._cache:
            self._cache[index] = self.source.load(index)
        return self._cache[index]

    def __getitem__(self, key: tuple[int, int, int]) -> Sample:
        index, step, slot = key
        seq = self._load(index)
        picks = sample_frame_indices(len(seq), self.config.sampler, step_rng(self.seed, step, slot),
                                     self.config.frames)
        record = self.source.records[index]
        return Sample(cut_frames(seq[picks]), self.labels[record.id], record.id, record.type, record.view)


class SourceTrainData:
    """``TrainData`` over a ``SequenceSource``: P x K ids, frames picked per (seed, step, slot)."""

    def __init__(self, source: SequenceSource, config: DataConfig, seed: int, *, pin_memory: bool = False) -> None:
        self.source, self.config, self.seed = source, config, seed
        # Page-locked batches only help (and only make sense) when they go to a CUDA device; pinning
        # for a CPU run would create a CUDA context in every process of a GPU machine.
        self.pin_memory = pin_memory
        self.sampler = TripletSampler(source, (config.p, config.k), seed=seed)
        self._labels = label_map(r.id for r in source.records)
        # View classes in sorted view-name order: CASIA-B's 000..180 become 0..10.
        self._views = label_map(r.view for r in source.records)

    @property
    def num_classes(self) -> int:
        """Number of training identities."""
        return len(self._labels)

    def batches(self, start_step: int, context: DistributedContext) -> Iterator[TrainBatch]:
        """This rank's batches of steps ``start_step + 1`` onwards."""
        loader: DataLoader[Any] = DataLoader(
            _StepDataset(self.source, self.config, self.seed),  # type: ignore[arg-type]
            batch_sampler=_StepSampler(self.sampler, start_step, context),
            collate_fn=collate,
            num_workers=self.config.workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.config.workers > 0,
        )
        for batch in loader:
            views = torch.tensor([self._views[v] for v in batch.views], dtype=torch.int64)
            yield TrainBatch(batch.seqs, batch.labels, batch.seqL, views)


def builtin_data_dir(output_dir: str | Path) -> Path:
    """Where a run renders the built-in synthetic set: ``output_dir/data``."""
    return Path(output_dir) / "data"


def render_builtin(config: DataConfig, output_dir: str | Path, context: DistributedContext) -> Path:
    """Render the built-in synthetic set into ``output_dir/data`` once (rank 0; the others wait)."""
    from workbench.data.synth import SynthConfig, render_dataset

    # Presets are SynthConfig's class methods (tiny, default, ...), looked up so new ones work unchanged.
    if not isinstance(inspect.getattr_static(SynthConfig, config.synthetic, None), classmethod):
        raise ValueError(f"data.synthetic={config.synthetic!r} is not a SynthConfig preset; use 'tiny' or 'default'")
    preset = getattr(SynthConfig, config.synthetic)
    root = builtin_data_dir(output_dir)
    # partition.json is written last, so its presence means a complete render; anything else is redone.
    if context.is_main and not (root / "partition.json").is_file():
        logger.info("rendering the %r synthetic set into %s", config.synthetic, root)
        render_dataset(root, preset(), overwrite=True)
    barrier()
    return root


def build_train_data(config: TrainConfig, context: DistributedContext,
                     device: torch.device | None = None) -> SourceTrainData:
    """The training data a config names; the built-in synthetic set is rendered into ``output_dir`` first.

    Batches are pinned for a CUDA ``device`` only.
    """
    data = config.data
    root = render_builtin(data, Path(config.output_dir), context) if data.is_builtin else Path(data.path)
    if not root.exists():
        raise FileNotFoundError(f"data.path={str(root)!r} does not exist; point it at an OpenGait-layout "
                                f"dataset or a packed store, or use data.path='synthetic'")
    if data.packed is not None and data.packed != is_packed_store(root):
        want = "a packed store (run `workbench data pack`)" if data.packed else "an OpenGait pkl tree"
        raise ValueError(f"data.packed={str(data.packed).lower()} but {root} is not {want}; fix data.packed or data.path")
    source = open_source(root, partition=data.partition, subset=data.subset)
    if len(source) == 0:
        raise ValueError(f"{root}: no sequences in subset {data.subset!r}; check data.partition and data.subset")
    return SourceTrainData(source, data, config.seed, pin_memory=device is not None and device.type == "cuda")
