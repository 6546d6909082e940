"""The non-deep baseline: gait energy images, PCA fitted on the training subset, 1-NN by the protocol."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from workbench.data import Partition, SequenceSource, cut_frames, open_source
from workbench.evaluation._embed import probe_flags
from workbench.evaluation._embeddings import EmbeddingSet
from workbench.evaluation._protocols import Protocol, get_protocol
from workbench.evaluation._results import EvaluationResult


def gait_energy_images(
    source: SequenceSource,
    *,
    progress: bool = True,
    transform: Callable[[np.ndarray], np.ndarray] = cut_frames,
) -> np.ndarray:
    """The gait energy image of every sequence: the mean of its cut frames in [0, 1], ``float32 [N, h, w]``."""
    if len(source) == 0:
        raise ValueError(f"{source.source_name}: no sequences")
    out: np.ndarray | None = None
    for i in tqdm(range(len(source)), desc="GEI", unit="seq", disable=not progress, leave=False):
        frames = transform(source.load(i))
        if out is None:
            out = np.empty((len(source), *frames.shape[1:]), dtype=np.float32)
        elif frames.shape[1:] != out.shape[1:]:
            r = source.records[i]
            raise ValueError(
                f"{source.source_name}: {r.id}/{r.type}/{r.view} has frames {list(frames.shape[1:])}, "
                f"the others {list(out.shape[1:])}; pretreat the dataset to one frame size"
            )
        out[i] = frames.mean(axis=0, dtype=np.float64)
    assert out is not None
    return out


@dataclass(frozen=True, eq=False)
class GEIBaseline:
    """The baseline's result plus how it was built."""

    result: EvaluationResult
    n_components: int
    explained_variance: float
    n_train: int
    n_test: int

    def table(self) -> str:
        """The protocol's table under one line describing the baseline."""
        head = (
            f"GEI + PCA baseline: {self.n_components} components ({100 * self.explained_variance:.1f} % of the "
            f"training variance), fitted on {self.n_train} training sequences, {self.n_test} test sequences"
        )
        return f"{head}\n{self.result.table()}"

    def summary(self) -> dict[str, float]:
        """The protocol's summary."""
        return self.result.summary()


def _fit_pca(train: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mean [d], components [k, d], explained share)`` of ``train: [n, d]`` by SVD."""
    mean = train.mean(axis=0, dtype=np.float64)
    centred = train.astype(np.float64) - mean
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    k = min(n_components, vt.shape[0])
    variance = singular**2
    share = float(variance[:k].sum() / variance.sum()) if variance.sum() > 0 else 1.0
    return mean, vt[:k], share


def gei_baseline(
    source: str | Path,
    protocol: str | Protocol = "synthetic",
    n_components: int = 64,
    *,
    metric: str = "euclidean",
    partition: str | Path | Partition | None = None,
    progress: bool = True,
) -> GEIBaseline:
    """Gait energy image -> PCA (fitted on TRAIN_SET) -> 1-NN under ``protocol`` on the test subset.

    ``source`` is a dataset root (OpenGait layout or packed store) with a partition file (default
    ``ROOT/partition.json``). The embeddings are the PCA coordinates as one part, ``[N, k, 1]``.
    """
    if n_components < 1:
        raise ValueError(f"n_components={n_components}: must be at least 1")
    proto = get_protocol(protocol)
    train_source = open_source(source, partition=partition, subset="train")
    test_source = open_source(source, partition=partition, subset=proto.subset)
    train = gait_energy_images(train_source, progress=progress)
    test = gait_energy_images(test_source, progress=progress)
    if train.shape[1:] != test.shape[1:]:
        raise ValueError(
            f"{source}: training GEIs are {list(train.shape[1:])}, test GEIs {list(test.shape[1:])}; "
            "pretreat both subsets to one frame size"
        )
    if len(train) < 2:
        raise ValueError(f"{source}: {len(train)} training sequence(s); PCA needs at least 2")
    mean, components, share = _fit_pca(train.reshape(len(train), -1), n_components)
    coords = (test.reshape(len(test), -1).astype(np.float64) - mean) @ components.T
    records = test_source.records
    flags = probe_flags(test_source, partition) if proto.needs_probe_flags else None
    embeddings = EmbeddingSet(
        coords.astype(np.float32)[:, :, None],
        [r.id for r in records], [r.type for r in records], [r.view for r in records],
        flags,
    )
    result = proto.evaluate(embeddings, metric=metric)
    return GEIBaseline(result, len(components), share, len(train), len(test))
