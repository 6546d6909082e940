"""Pack any ``SequenceSource`` into a ``PackedStore``, atomically and verified by checksum."""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from workbench.data._errors import DataError
from workbench.data._open import open_source
from workbench.data._packed import (
    FORMAT,
    FRAMES_NAME,
    MANIFEST_NAME,
    VERSION,
    PackedStore,
    is_packed_store,
    write_manifest,
)
from workbench.data._records import SequenceSource

_SPOOL_NAME = "frames.spool"
_COPY_BYTES = 16 * 1024 * 1024


def pack_dataset(
    source: SequenceSource | str | Path,
    dst: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> PackedStore:
    """Write every sequence of ``source`` (first modality) into a packed store at ``dst``.

    ``source`` is a ``SequenceSource`` or a path ``open_source`` understands (an OpenGait root or
    another store). Top-level ``*.json`` files of the source root (``partition.json``, ...) are
    copied along. The store is built in a hidden sibling folder and renamed into place when complete.
    """
    source_root = (Path(source) if isinstance(source, str | Path)
                   else getattr(source, "root", None) or getattr(source, "path", None))
    dst = Path(dst)
    check_destination(dst, Path(source_root).resolve() if source_root is not None else None, overwrite)
    if not isinstance(source, SequenceSource):
        source = open_source(source)
    dst.parent.mkdir(parents=True, exist_ok=True)
    staging = dst.parent / f".{dst.name}.packing-{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        manifest = _write_frames(source, staging, progress)
        _copy_side_files(source, staging)
        write_manifest(staging, manifest)
        _swap_into_place(staging, dst)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return PackedStore(dst)


def _write_frames(source: SequenceSource, staging: Path, progress: bool) -> dict[str, Any]:
    """Spool every sequence to a raw file, then copy it into ``frames.npy`` while hashing."""
    columns: dict[str, list[Any]] = {"offset": [], "length": [], "id": [], "type": [], "view": []}
    frame_shape: tuple[int, int] | None = None
    first_where = ""
    total = 0
    # Sequence lengths are only known after loading each one, and open_memmap needs the final
    # shape up front, so frames stream to a spool file first (one read of every pkl, not two).
    spool = staging / _SPOOL_NAME
    with spool.open("wb") as out:
        for index in tqdm(range(len(source)), desc="pack", unit="seq", disable=not progress):
            record = source.records[index]
            sequence = source.load(index)
            where = f"{record.paths[0] if record.paths else source.source_name} ({record.key})"
            if frame_shape is None:
                frame_shape, first_where = (int(sequence.shape[1]), int(sequence.shape[2])), where
            elif tuple(sequence.shape[1:]) != frame_shape:
                raise DataError(
                    f"{where}: frames of {list(sequence.shape[1:])}, but {first_where} has {list(frame_shape)}; "
                    "a packed store holds one frame size, pretreat all sequences to the same size"
                )
            out.write(np.ascontiguousarray(sequence).reshape(-1).data)
            for column, value in zip(
                columns, (total, len(sequence), record.id, record.type, record.view), strict=True
            ):
                columns[column].append(value)
            total += len(sequence)
    if frame_shape is None:
        raise DataError(f"{source.source_name}: nothing to pack, the source has no sequences")
    checksum = _spool_into_npy(spool, staging / FRAMES_NAME, (total, *frame_shape), progress)
    spool.unlink()
    return {
        "format": FORMAT,
        "version": VERSION,
        "frames_file": FRAMES_NAME,
        "frame_shape": list(frame_shape),
        "total_frames": total,
        "checksum": {"sha256": checksum},
        "source": source.source_name,
        "sequences": columns,
    }


def _spool_into_npy(spool: Path, target: Path, shape: tuple[int, int, int], progress: bool) -> str:
    frames = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=shape)
    flat = frames.reshape(-1)
    digest = hashlib.sha256()
    with spool.open("rb") as src, tqdm(
        total=flat.size, desc="write", unit="B", unit_scale=True, disable=not progress
    ) as bar:
        position = 0
        while position < flat.size:
            chunk = src.read(min(_COPY_BYTES, flat.size - position))
            if not chunk:
                raise DataError(f"{spool}: spool ended early at byte {position} of {flat.size}")
            flat[position : position + len(chunk)] = np.frombuffer(chunk, dtype=np.uint8)
            digest.update(chunk)
            position += len(chunk)
            bar.update(len(chunk))
    frames.flush()
    del flat, frames
    with target.open("rb") as fh:
        os.fsync(fh.fileno())
    return digest.hexdigest()


def _copy_side_files(source: SequenceSource, staging: Path) -> None:
    root = getattr(source, "root", None) or getattr(source, "path", None)
    if not isinstance(root, Path) or not root.is_dir():
        return
    for side in sorted(root.glob("*.json")):
        if side.name != MANIFEST_NAME and side.is_file():
            shutil.copy2(side, staging / side.name)


def check_destination(dst: Path, source_root: Path | None, overwrite: bool) -> None:
    """Refuse, before any work, a destination whose replacement would destroy what the packer did not write.

    ``overwrite`` replaces only an empty folder or a packed store (its manifest present) that holds
    nothing but the packer's own files, and never the source itself or a folder that contains it.
    """
    if not dst.exists():
        return
    if not overwrite:
        raise FileExistsError(f"{dst}: already exists; choose another destination or pass overwrite=True")
    resolved = dst.resolve()
    if source_root is not None and (resolved == source_root or resolved in source_root.parents):
        raise FileExistsError(f"{dst}: is the source {source_root} or holds it; pack into a folder of its own")
    if dst.is_dir() and not any(dst.iterdir()):
        return  # an empty folder holds nothing to lose
    if not is_packed_store(dst):
        raise FileExistsError(f"{dst}: exists and is not a packed store ({MANIFEST_NAME} missing); overwrite only "
                              "replaces a store `workbench data pack` wrote. Choose another destination")
    foreign = sorted(p.name for p in dst.iterdir()
                     if p.is_dir() or not (p.name in (MANIFEST_NAME, FRAMES_NAME) or p.suffix in (".json", ".npy")))
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise FileExistsError(f"{dst}: holds files the packer did not write ({shown}); move them out or choose "
                              "another destination")


def _swap_into_place(staging: Path, dst: Path) -> None:
    """Rename the finished staging folder to ``dst``, moving an existing ``dst`` aside first."""
    if not dst.exists():
        os.rename(staging, dst)
        return
    retired = dst.parent / f".{dst.name}.replaced-{secrets.token_hex(4)}"
    os.rename(dst, retired)
    os.rename(staging, dst)
    shutil.rmtree(retired, ignore_errors=True)
