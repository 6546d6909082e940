"""Reader for the OpenGait on-disk layout ``ROOT/<id>/<type>/<view>/*.pkl``."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from workbench.data._errors import DataError
from workbench.data._pickle import load_pickle
from workbench.data._records import (
    Partition,
    SequenceRecord,
    check_sequence,
    describe_filters,
    label_map,
    resolve_partition,
    select_records,
)

LAYOUT = "<id>/<type>/<view>/*.pkl"


def _subdirs(path: Path) -> list[Path]:
    # Hidden entries (".cache", editor files) are never ids, types or views.
    with os.scandir(path) as entries:
        return sorted(Path(e.path) for e in entries if e.is_dir() and not e.name.startswith("."))


def scan_records(root: str | Path) -> list[SequenceRecord]:
    """Every sequence folder under ``root`` that holds at least one ``.pkl``, sorted by id, type, view."""
    root = Path(root)
    records: list[SequenceRecord] = []
    empty_folders = 0
    for id_dir in _subdirs(root):
        for type_dir in _subdirs(id_dir):
            for view_dir in _subdirs(type_dir):
                with os.scandir(view_dir) as entries:
                    pkls = sorted(Path(e.path) for e in entries if e.is_file() and e.name.endswith(".pkl"))
                if not pkls:
                    empty_folders += 1
                    continue
                records.append(SequenceRecord(id_dir.name, type_dir.name, view_dir.name, tuple(pkls)))
    if empty_folders:
        warnings.warn(
            f"{root}: {empty_folders} sequence folder(s) hold no .pkl file and are skipped",
            stacklevel=2,
        )
    return records


class OpenGaitDataset:
    """Sequences stored one folder each as OpenGait pkls; implements ``SequenceSource``.

    Args:
        root: dataset root holding ``<id>/<type>/<view>/*.pkl``.
        partition: partition JSON path or ``Partition``; defaults to ``ROOT/partition.json`` when a
            ``subset`` is asked for.
        subset: ``"train"``, ``"test"`` or ``"probe"`` (Gait3D's ``PROBE_SET``).
        types: sequence types to keep, exact (``"nm-01"``) or prefix (``"nm"``).
        views: views to keep (exact).
    """

    def __init__(
        self,
        root: str | Path,
        partition: str | Path | Partition | None = None,
        subset: str | None = None,
        types: Iterable[str] | None = None,
        views: Iterable[str] | None = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"{self.root}: dataset root not found; expected a folder holding {LAYOUT}")
        self.partition = resolve_partition(partition, self.root, subset)
        all_records = scan_records(self.root)
        if not all_records:
            raise DataError(
                f"{self.root}: empty dataset: searched {self.root}/{LAYOUT} and found no sequence; "
                "check the root, or pretreat raw frames first with `workbench data pretreat`"
            )
        keep = select_records(
            all_records,
            partition=self.partition,
            subset=subset,
            types=types,
            views=views,
            source_name=str(self.root),
        )
        if not keep:
            raise DataError(
                f"{self.root}: no sequence matches {describe_filters(subset, types, views)} "
                f"({len(all_records)} sequences on disk); relax the filters"
            )
        self.records: list[SequenceRecord] = [all_records[i] for i in keep]
        self.label_map: dict[str, int] = label_map(r.id for r in self.records)

    @property
    def source_name(self) -> str:
        """The dataset root."""
        return str(self.root)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"OpenGaitDataset({str(self.root)!r}, {len(self)} sequences)"

    def _record(self, index: int) -> SequenceRecord:
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"sequence index {index} out of range for {len(self.records)} sequences")
        return self.records[index]

    def load(self, index: int) -> np.ndarray:
        """Sequence ``index``, first modality: ``uint8 [frames, h, w]``."""
        path = self._record(index).paths[0]
        return check_sequence(load_pickle(path), path)

    def load_modalities(self, index: int) -> list[np.ndarray]:
        """Every parallel pkl of sequence ``index`` (sorted by file name), each ``uint8 [frames, h, w]``."""
        paths = self._record(index).paths
        arrays = [check_sequence(load_pickle(path), path) for path in paths]
        for path, array in zip(paths[1:], arrays[1:], strict=True):
            if len(array) != len(arrays[0]):
                raise DataError(
                    f"{path}: {len(array)} frames, but the parallel {paths[0].name} has {len(arrays[0])}; "
                    "parallel modalities of one sequence must have equal length"
                )
        return arrays

    def label(self, index: int) -> int:
        """Contiguous training label of sequence ``index``."""
        return self.label_map[self._record(index).id]
