"""Embedding extraction: run a model over every sequence of a source, many sequences per batch."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from workbench.data import Partition, Sample, SequenceSource, collate, cut_frames, open_source, read_partition
from workbench.evaluation._embeddings import EmbeddingSet
from workbench.evaluation._protocols import Protocol, get_protocol
from workbench.evaluation._results import EvaluationResult
from workbench.models import autocast

# Sequences loaded ahead and sorted by length when the source cannot tell lengths without loading:
# batches then hold similar lengths (little padding) while memory stays bounded.
_WINDOW_BATCHES = 8


def _length_ordered_batches(source: SequenceSource, batch_size: int) -> Iterator[list[tuple[int, np.ndarray]]]:
    lengths = getattr(source, "lengths", None)
    if isinstance(lengths, np.ndarray) and lengths.shape == (len(source),):
        # The source knows every length (a packed store): one global sort, longest first.
        order = np.argsort(-lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            yield [(int(i), source.load(int(i))) for i in order[start : start + batch_size]]
        return
    window = batch_size * _WINDOW_BATCHES
    for start in range(0, len(source), window):
        loaded = [(i, source.load(i)) for i in range(start, min(len(source), start + window))]
        loaded.sort(key=lambda item: -len(item[1]))
        for b in range(0, len(loaded), batch_size):
            yield loaded[b : b + batch_size]


def _model_device(model: nn.Module) -> torch.device:
    for tensor in model.parameters():
        return tensor.device
    return torch.device("cpu")


def extract_embeddings(
    model: nn.Module,
    source: SequenceSource,
    batch_size: int = 8,
    device: str | torch.device | None = None,
    frames: int | None = None,
    *,
    progress: bool = True,
    transform: Callable[[np.ndarray], np.ndarray] = cut_frames,
    amp: str = "off",
) -> EmbeddingSet:
    """Inference embeddings ``float32 [N, c, p]`` of every sequence of ``source``, in source order.

    Sequences of different lengths share a batch (zero-padded, with ``seqL``); they are grouped by
    length to limit padding. Every frame is used unless ``frames`` caps each sequence to its first
    ``frames`` frames. ``device`` defaults to the model's; the model's train/eval mode is restored.
    ``amp`` (``"off"``, ``"bf16"``, ``"fp16"`` on CUDA) runs the forward under autocast; the embeddings
    are stored as float32 either way.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size}: must be at least 1")
    if frames is not None and frames < 1:
        raise ValueError(f"frames={frames}: must be at least 1 (or None for every frame)")
    if len(source) == 0:
        raise ValueError(f"{source.source_name}: no sequences to embed")
    target = torch.device(device) if device is not None else _model_device(model)
    precision = autocast(target, amp)  # a bad choice fails before any sequence is loaded
    records = source.records
    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), tqdm(total=len(source), desc="embedding", unit="seq",
                                          disable=not progress, leave=False) as bar:
            for batch in _length_ordered_batches(source, batch_size):
                samples = []
                for index, seq in batch:
                    if frames is not None:
                        seq = seq[:frames]
                    r = records[index]
                    samples.append(Sample(transform(seq), 0, r.id, r.type, r.view))
                collated = collate(samples)
                seq_lengths = None if collated.seqL is None else collated.seqL.to(target)
                with precision:
                    output = model(collated.seqs.to(target), seq_lengths)
                features = getattr(output, "inference", None)
                if not isinstance(features, torch.Tensor) or features.ndim != 3:
                    raise TypeError(
                        f"{type(model).__name__}: forward must return a ModelOutput whose 'inference' is "
                        f"[n, c, p]; got {type(output).__name__}"
                    )
                if out is None:
                    out = np.empty((len(source), *features.shape[1:]), dtype=np.float32)
                out[[index for index, _ in batch]] = features.float().cpu().numpy()
                bar.update(len(batch))
    finally:
        model.train(was_training)
    assert out is not None
    return EmbeddingSet(out, [r.id for r in records], [r.type for r in records], [r.view for r in records])


def probe_flags(source: SequenceSource, partition: Partition | str | Path | None = None) -> np.ndarray:
    """``bool [N]``: which sequences Gait3D's ``PROBE_SET`` lists (by ``id-type-view`` key or by id).

    The partition defaults to the one the source was opened with.
    """
    if partition is None:
        partition = getattr(source, "partition", None)
    if partition is None:
        raise ValueError(
            f"{source.source_name}: no partition to read PROBE_SET from; pass partition=PATH to the JSON file"
        )
    part = partition if isinstance(partition, Partition) else read_partition(partition)
    if not part.probe:
        where = f"{part.path}" if part.path is not None else "the partition"
        raise ValueError(f"{where}: no PROBE_SET; the gait3d protocol needs one (id-type-view keys)")
    wanted = set(part.probe)
    return np.array([f"{r.id}-{r.type}-{r.view}" in wanted or r.id in wanted for r in source.records])


def open_for_protocol(
    data: str | Path | SequenceSource, protocol: Protocol, partition: str | Path | Partition | None = None
) -> SequenceSource:
    """The source a protocol evaluates: a dataset path opened on the protocol's subset, or ``data`` itself."""
    if isinstance(data, str | Path):
        return open_source(data, partition=partition, subset=protocol.subset)
    return data


def evaluate_model(
    model: nn.Module,
    data: str | Path | SequenceSource,
    protocol: str | Protocol = "synthetic",
    *,
    partition: str | Path | Partition | None = None,
    metric: str = "euclidean",
    batch_size: int = 8,
    device: str | torch.device | None = None,
    frames: int | None = None,
    progress: bool = True,
    amp: str = "off",
) -> tuple[EvaluationResult, EmbeddingSet]:
    """Extract embeddings of the protocol's subset of ``data`` and evaluate them: ``(result, embeddings)``.

    ``amp`` runs the model under autocast (see ``extract_embeddings``).
    """
    proto = get_protocol(protocol)
    source = open_for_protocol(data, proto, partition)
    # Flags first: a missing PROBE_SET should fail before minutes of inference, not after.
    flags = probe_flags(source, partition) if proto.needs_probe_flags else None
    extracted = extract_embeddings(model, source, batch_size, device, frames, progress=progress, amp=amp)
    embeddings = EmbeddingSet(extracted.embeddings, extracted.ids, extracted.types, extracted.views, flags)
    return proto.evaluate(embeddings, metric=metric), embeddings


def make_evaluator(
    data: str | Path | SequenceSource,
    protocol: str | Protocol = "synthetic",
    **options: object,
) -> Callable[[nn.Module, int], Mapping[str, float]]:
    """An evaluator for the trainer: ``(model, step) -> summary`` on ``data`` under ``protocol``.

    ``options`` are passed to ``evaluate_model`` (``metric``, ``batch_size``, ``frames``, ...); the
    source is opened once.
    """
    proto = get_protocol(protocol)
    partition = options.pop("partition", None)
    source = open_for_protocol(data, proto, partition)  # type: ignore[arg-type]
    options.setdefault("progress", False)

    def evaluator(model: nn.Module, step: int) -> Mapping[str, float]:
        result, _ = evaluate_model(model, source, proto, partition=partition, **options)  # type: ignore[arg-type]
        return result.summary()

    return evaluator
