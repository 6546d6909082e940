"""Packed store: every frame of a dataset in one memory-mapped ``uint8`` ``.npy`` plus a JSON index.

Layout of a store directory::

    STORE/frames.npy              uint8 [total_frames, h, w], sequences back to back
    STORE/workbench_packed.json   format, frame shape, sha256 of the frame bytes, and per sequence
                                  offset, length, id, type, view
    STORE/*.json                  side files copied from the source root (partition.json, ...)

The manifest is the last file written, inside a temporary sibling folder that is renamed to STORE
only when complete, so an interrupted pack never leaves a folder that looks like a store.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from workbench.data._errors import CorruptFileError, DataError
from workbench.data._records import (
    Partition,
    SequenceRecord,
    describe_filters,
    label_map,
    resolve_partition,
    select_records,
)

MANIFEST_NAME = "workbench_packed.json"
FRAMES_NAME = "frames.npy"
FORMAT = "workbench-packed-store"
VERSION = 1
_CHUNK_BYTES = 32 * 1024 * 1024


def is_packed_store(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding a packed-store manifest."""
    path = Path(path)
    return path.is_dir() and (path / MANIFEST_NAME).is_file()


def read_manifest(path: Path) -> dict[str, Any]:
    """The validated manifest of the store at ``path``."""
    manifest_path = path / MANIFEST_NAME
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{path}: not a packed store ({MANIFEST_NAME} missing); create one with `workbench data pack`"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{manifest_path}: not valid JSON ({exc}); re-run `workbench data pack`") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptFileError(f"{manifest_path}: not a {FORMAT} manifest; re-run `workbench data pack`")
    if manifest.get("version") != VERSION:
        raise DataError(
            f"{manifest_path}: store version {manifest.get('version')!r}, this workbench reads version "
            f"{VERSION}; re-pack the dataset with this version"
        )
    sequences = manifest.get("sequences")
    columns = ("offset", "length", "id", "type", "view")
    if not isinstance(sequences, dict) or any(not isinstance(sequences.get(c), list) for c in columns):
        raise CorruptFileError(f"{manifest_path}: 'sequences' must hold the lists {', '.join(columns)}")
    if len({len(sequences[c]) for c in columns}) != 1:
        raise CorruptFileError(f"{manifest_path}: the 'sequences' columns differ in length")
    return manifest


def _data_checksum(frames: np.ndarray) -> str:
    """sha256 of a frame array's bytes, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    flat = frames.reshape(-1)
    for start in range(0, flat.size, _CHUNK_BYTES):
        digest.update(np.ascontiguousarray(flat[start : start + _CHUNK_BYTES]).data)
    return digest.hexdigest()


class PackedStore:
    """A packed dataset served from one memory map; implements ``SequenceSource``.

    ``load(i)`` returns a read-only view into the map (no copy). The map opens lazily, so a store
    pickled into DataLoader workers maps the file once per worker. Filters work as in
    ``OpenGaitDataset``; the partition defaults to ``STORE/partition.json`` when a subset is asked for.
    """

    def __init__(
        self,
        path: str | Path,
        partition: str | Path | Partition | None = None,
        subset: str | None = None,
        types: Iterable[str] | None = None,
        views: Iterable[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.manifest = read_manifest(self.path)
        self.frames_path = self.path / FRAMES_NAME
        self._frame_shape = self._check_frames_file()
        columns = self.manifest["sequences"]
        all_records = [
            SequenceRecord(str(i), str(t), str(v), (self.frames_path,))
            for i, t, v in zip(columns["id"], columns["type"], columns["view"], strict=True)
        ]
        self.partition = resolve_partition(partition, self.path, subset)
        keep = select_records(
            all_records, partition=self.partition, subset=subset, types=types, views=views,
            source_name=str(self.path),
        )
        if not keep:
            raise DataError(
                f"{self.path}: no sequence matches {describe_filters(subset, types, views)} "
                f"({len(all_records)} sequences in the store); relax the filters"
            )
        self.records: list[SequenceRecord] = [all_records[i] for i in keep]
        self.offsets = np.asarray(columns["offset"], dtype=np.int64)[keep]
        self.lengths = np.asarray(columns["length"], dtype=np.int64)[keep]
        self.label_map: dict[str, int] = label_map(r.id for r in self.records)
        self._frames: np.ndarray | None = None

    def _check_frames_file(self) -> tuple[int, int]:
        """Check ``frames.npy`` against the manifest (dtype, shape, byte size) without mapping it."""
        total = int(self.manifest["total_frames"])
        height, width = (int(v) for v in self.manifest["frame_shape"])
        try:
            with self.frames_path.open("rb") as fh:
                version = np.lib.format.read_magic(fh)
                read_header = (
                    np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                )
                shape, fortran, dtype = read_header(fh)
                header_bytes = fh.tell()
        except FileNotFoundError as exc:
            raise CorruptFileError(f"{self.frames_path}: missing; re-run `workbench data pack`") from exc
        except ValueError as exc:
            raise CorruptFileError(f"{self.frames_path}: not a .npy file ({exc}); re-run `workbench data pack`") from exc
        if dtype != np.uint8 or fortran or tuple(shape) != (total, height, width):
            raise CorruptFileError(
                f"{self.frames_path}: holds {dtype} {list(shape)}, the manifest says uint8 "
                f"{[total, height, width]}; re-run `workbench data pack`"
            )
        expected = header_bytes + total * height * width
        actual = self.frames_path.stat().st_size
        if actual != expected:
            raise CorruptFileError(
                f"{self.frames_path}: {actual} bytes, expected {expected} (truncated or overwritten); "
                "re-run `workbench data pack`"
            )
        return height, width

    @property
    def frames(self) -> np.ndarray:
        """The whole read-only frame map ``uint8 [total_frames, h, w]``, opened on first use."""
        if self._frames is None:
            # A plain ndarray view of the memmap (which it keeps alive): slicing it skips the
            # memmap subclass's per-slice bookkeeping, which dominates small reads.
            self._frames = np.load(self.frames_path, mmap_mode="r").view(np.ndarray)
        return self._frames

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(h, w)`` of every frame."""
        return self._frame_shape

    @property
    def source_name(self) -> str:
        """The store directory."""
        return str(self.path)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"PackedStore({str(self.path)!r}, {len(self)} sequences)"

    def __getstate__(self) -> dict[str, Any]:
        # Workers re-open the map themselves instead of receiving a pickled copy of the frames.
        state = self.__dict__.copy()
        state["_frames"] = None
        return state

    def load(self, index: int) -> np.ndarray:
        """Sequence ``index``: a read-only view ``uint8 [frames, h, w]`` into the map."""
        if not -len(self.records) <= index < len(self.records):
            raise IndexError(f"sequence index {index} out of range for {len(self.records)} sequences")
        start = int(self.offsets[index])
        return self.frames[start : start + int(self.lengths[index])]

    def label(self, index: int) -> int:
        """Contiguous training label of sequence ``index``."""
        return self.label_map[self.records[index].id]

    def verify(self) -> None:
        """Recompute the checksum of every frame (chunked) and raise ``CorruptFileError`` on a mismatch."""
        expected = self.manifest["checksum"]["sha256"]
        actual = _data_checksum(self.frames)
        if actual != expected:
            raise CorruptFileError(
                f"{self.frames_path}: checksum mismatch (sha256 {actual[:12]}..., manifest says "
                f"{expected[:12]}...); the frames changed after packing, re-run `workbench data pack`"
            )


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest durably (it marks the store complete, so it goes last)."""
    target = directory / MANIFEST_NAME
    with target.open("w") as fh:
        json.dump(manifest, fh)
        fh.flush()
        os.fsync(fh.fileno())
