"""Sequence records, the ``SequenceSource`` protocol, partition files and record filtering."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from workbench.data._errors import DataError

SUBSETS = ("train", "test", "probe")
DEFAULT_PARTITION_NAME = "partition.json"


@dataclass(frozen=True)
class SequenceRecord:
    """One sequence folder ``ROOT/<id>/<type>/<view>/``; ``paths`` holds one file per modality."""

    id: str
    type: str
    view: str
    paths: tuple[Path, ...]

    @property
    def key(self) -> str:
        """``id-type-view``, the spelling Gait3D's ``PROBE_SET`` uses."""
        return f"{self.id}-{self.type}-{self.view}"


@runtime_checkable
class SequenceSource(Protocol):
    """Anything that serves sequences ``uint8 [frames, h, w]`` by index, with their records."""

    records: list[SequenceRecord]

    @property
    def source_name(self) -> str:
        """A short human-readable name (the dataset root or store path)."""
        ...

    def __len__(self) -> int: ...

    def load(self, index: int) -> np.ndarray:
        """Sequence ``index`` (first modality): ``uint8 [frames, h, w]``."""
        ...


@dataclass(frozen=True)
class Partition:
    """The ids of a partition file; ``probe`` holds Gait3D's ``PROBE_SET`` (``id-type-view`` keys)."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    probe: tuple[str, ...] = ()
    path: Path | None = None


def _id_list(path: Path, data: dict[str, object], key: str, required: bool) -> tuple[str, ...]:
    if key not in data:
        if required:
            raise DataError(
                f"{path}: missing {key!r}; a partition file is "
                '{"TRAIN_SET": [ids], "TEST_SET": [ids]} (Gait3D adds "PROBE_SET")'
            )
        return ()
    value = data[key]
    if not isinstance(value, list) or not all(isinstance(item, str | int) for item in value):
        raise DataError(f"{path}: {key!r} must be a list of id strings, got {type(value).__name__}")
    return tuple(str(item) for item in value)


def read_partition(path: str | Path) -> Partition:
    """Read an OpenGait partition file ``{"TRAIN_SET": [...], "TEST_SET": [...], "PROBE_SET": [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: partition file not found; pass the JSON file with TRAIN_SET/TEST_SET")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc}); fix or re-create the partition file") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with TRAIN_SET and TEST_SET, got {type(data).__name__}")
    return Partition(
        train=_id_list(path, data, "TRAIN_SET", True),
        test=_id_list(path, data, "TEST_SET", True),
        probe=_id_list(path, data, "PROBE_SET", False),
        path=path,
    )


def _type_matches(seq_type: str, wanted: Iterable[str]) -> bool:
    # "nm" selects nm-01..nm-06 but not "nmx-01": prefixes only match whole dash-separated parts.
    return any(seq_type == w or seq_type.startswith(w + "-") for w in wanted)


def select_records(
    records: Sequence[SequenceRecord],
    *,
    partition: Partition | None = None,
    subset: str | None = None,
    types: Iterable[str] | None = None,
    views: Iterable[str] | None = None,
    source_name: str = "dataset",
) -> list[int]:
    """Indices of ``records`` in ``subset`` of ``partition`` whose type and view pass the filters.

    ``types`` entries match exactly (``"nm-01"``) or as a prefix of dash-separated parts (``"nm"``);
    ``views`` match exactly. ``subset="probe"`` keeps the sequences listed in ``PROBE_SET``.
    Partition ids with no sequence on disk are reported with one ``warnings.warn``.
    """
    keep = list(range(len(records)))
    if subset is not None:
        if subset not in SUBSETS:
            raise DataError(f"subset={subset!r}: expected one of {', '.join(SUBSETS)}")
        if partition is None:
            raise DataError(f"subset={subset!r} needs a partition file (TRAIN_SET/TEST_SET); pass partition=")
        keep = _subset_indices(records, partition, subset, source_name)
    if types is not None:
        wanted_types = [types] if isinstance(types, str) else list(types)
        keep = [i for i in keep if _type_matches(records[i].type, wanted_types)]
    if views is not None:
        wanted_views = {views} if isinstance(views, str) else set(views)
        keep = [i for i in keep if records[i].view in wanted_views]
    return keep


def _subset_indices(
    records: Sequence[SequenceRecord], partition: Partition, subset: str, source_name: str
) -> list[int]:
    where = f" ({partition.path})" if partition.path is not None else ""
    if subset == "probe":
        if not partition.probe:
            raise DataError(f"subset='probe': the partition{where} has no PROBE_SET; use 'train' or 'test'")
        wanted = set(partition.probe)
        keep = [i for i, r in enumerate(records) if r.key in wanted or r.id in wanted]
        found = {records[i].key for i in keep} | {records[i].id for i in keep}
    else:
        wanted = set(partition.train if subset == "train" else partition.test)
        keep = [i for i, r in enumerate(records) if r.id in wanted]
        found = {records[i].id for i in keep}
    missing = sorted(wanted - found)
    if missing:
        shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.warn(
            f"{source_name}: {len(missing)} of {len(wanted)} {subset} entries of the partition{where} "
            f"have no sequence on disk ({shown}); they are skipped",
            stacklevel=3,
        )
    return keep


def label_map(ids: Iterable[str]) -> dict[str, int]:
    """Map each distinct id to a contiguous label ``0..n-1`` in sorted id order."""
    return {identity: label for label, identity in enumerate(sorted(set(ids)))}


def source_labels(source: SequenceSource) -> np.ndarray:
    """Contiguous training labels ``int64 [len(source)]`` of a source's records (sorted id order)."""
    mapping = label_map(r.id for r in source.records)
    return np.array([mapping[r.id] for r in source.records], dtype=np.int64)


def check_sequence(array: object, where: str | Path) -> np.ndarray:
    """Return ``array`` if it is ``uint8 [frames, h, w]`` with at least one frame, else raise naming ``where``."""
    if not isinstance(array, np.ndarray):
        raise DataError(f"{where}: expected a numpy array uint8 [frames, h, w], got {type(array).__name__}")
    if array.dtype != np.uint8 or array.ndim != 3:
        raise DataError(
            f"{where}: expected uint8 [frames, h, w], got {array.dtype} {list(array.shape)}; "
            "pretreat the raw frames with `workbench data pretreat`"
        )
    if array.shape[0] == 0:
        raise DataError(f"{where}: zero frames; remove the sequence or pretreat it again")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise DataError(f"{where}: empty frames of shape {list(array.shape[1:])}; pretreat it again")
    return array


def resolve_partition(
    partition: str | Path | Partition | None, root: Path, subset: str | None
) -> Partition | None:
    """The partition to filter with: as given, read from a path, or ``ROOT/partition.json`` for a subset."""
    if subset is not None and subset not in SUBSETS:
        raise DataError(f"subset={subset!r}: expected one of {', '.join(SUBSETS)}")
    if isinstance(partition, Partition):
        return partition
    if partition is not None:
        return read_partition(partition)
    if subset is None:
        return None
    default = root / DEFAULT_PARTITION_NAME
    if not default.is_file():
        raise FileNotFoundError(
            f"subset={subset!r} needs a partition file: none given and {default} does not exist; "
            "pass partition=PATH to the TRAIN_SET/TEST_SET JSON"
        )
    return read_partition(default)


def describe_filters(subset: str | None, types: object, views: object) -> str:
    """The active filters as ``subset='train', types=['nm']`` for error messages."""
    parts = [f"{name}={value!r}" for name, value in (("subset", subset), ("types", types), ("views", views))]
    return ", ".join(p for p in parts if not p.endswith("=None")) or "no filters"
