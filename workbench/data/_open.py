"""``open_source``: open a dataset path as whichever ``SequenceSource`` it holds."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from workbench.data._opengait import OpenGaitDataset
from workbench.data._packed import PackedStore, is_packed_store
from workbench.data._records import Partition


def open_source(
    path: str | Path,
    partition: str | Path | Partition | None = None,
    subset: str | None = None,
    types: Iterable[str] | None = None,
    views: Iterable[str] | None = None,
) -> OpenGaitDataset | PackedStore:
    """Open ``path`` as a ``PackedStore`` if it holds a packed manifest, else as an ``OpenGaitDataset``."""
    if is_packed_store(path):
        return PackedStore(path, partition=partition, subset=subset, types=types, views=views)
    return OpenGaitDataset(path, partition=partition, subset=subset, types=types, views=views)
