"""Pretreat a whole folder of raw silhouettes into the OpenGait layout, in parallel.

Accepted raw layouts (``SRC`` is the raw root; each sequence becomes ``DST/<id>/<type>/<view>/<view>.pkl``):

- ``SRC/<id>/<type>/<view>/*.png`` (also ``.jpg``, ``.jpeg``, ``.bmp``): one image per frame, in file-name order;
- ``SRC/<id>/<type>/<view>/*.gif``: one animated GIF inside the view folder (used when it holds no frame images);
- ``SRC/<id>/<type>/<view>.gif``: one animated GIF named after the view.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from workbench._process import pool_context
from workbench.data._errors import CorruptFileError, DataError
from workbench.data._pickle import save_pickle
from workbench.data._pretreat import FRAME_SUFFIXES, _check_size, pretreat_frame, read_frame, read_gif

SHORT_SEQUENCE = 5
RAW_LAYOUTS = "<id>/<type>/<view>/*.png, <id>/<type>/<view>/*.gif or <id>/<type>/<view>.gif"


@dataclass(frozen=True)
class RawSequence:
    """One raw sequence: a folder of frame images or a single animated GIF."""

    id: str
    type: str
    view: str
    paths: tuple[Path, ...]
    is_gif: bool

    @property
    def key(self) -> str:
        return f"{self.id}/{self.type}/{self.view}"


@dataclass(frozen=True)
class _Result:
    key: str
    frames_written: int
    frames_skipped: int
    bad_frames: tuple[str, ...]
    error: str | None


@dataclass
class PretreatSummary:
    """What a pretreatment run did; ``str()`` gives the report the CLI prints."""

    sequences_found: int = 0
    sequences_written: int = 0
    frames_written: int = 0
    frames_skipped: int = 0
    bad_frames: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    short: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"sequences: {self.sequences_written} written of {self.sequences_found} found",
            f"frames: {self.frames_written} written, {self.frames_skipped} skipped without a silhouette, "
            f"{len(self.bad_frames)} unreadable",
            f"dropped empty sequences: {len(self.empty)}; shorter than {SHORT_SEQUENCE} frames: "
            f"{len(self.short)}; failed files: {len(self.failed)}",
        ]
        lines += [f"  failed: {message}" for message in self.failed[:10]]
        lines += [f"  unreadable frame: {message}" for message in self.bad_frames[:10]]
        return "\n".join(lines)


def _entries(path: Path) -> list[os.DirEntry[str]]:
    with os.scandir(path) as it:
        return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)


def find_raw_sequences(src: str | Path) -> tuple[list[RawSequence], list[str]]:
    """The raw sequences under ``src`` (sorted) and messages for folders that could not be used."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: raw data folder not found; expected {RAW_LAYOUTS}")
    found: dict[tuple[str, str, str], RawSequence] = {}
    problems: list[str] = []
    for id_entry in (e for e in _entries(src) if e.is_dir()):
        for type_entry in (e for e in _entries(Path(id_entry.path)) if e.is_dir()):
            for entry in _entries(Path(type_entry.path)):
                sequence = _raw_sequence(id_entry.name, type_entry.name, entry, problems)
                if sequence is None:
                    continue
                key = (sequence.id, sequence.type, sequence.view)
                if key in found:
                    problems.append(f"{entry.path}: duplicate of {found[key].paths[0]}; kept the first")
                    continue
                found[key] = sequence
    return [found[key] for key in sorted(found)], problems


def _raw_sequence(id_: str, type_: str, entry: os.DirEntry[str], problems: list[str]) -> RawSequence | None:
    path = Path(entry.path)
    if entry.is_file():
        if path.suffix.lower() == ".gif":
            return RawSequence(id_, type_, path.stem, (path,), True)
        return None
    if not entry.is_dir():
        return None
    files = [Path(e.path) for e in _entries(path) if e.is_file()]
    frames = tuple(f for f in files if f.suffix.lower() in FRAME_SUFFIXES)
    if frames:
        return RawSequence(id_, type_, path.name, frames, False)
    gifs = [f for f in files if f.suffix.lower() == ".gif"]
    if len(gifs) == 1:
        return RawSequence(id_, type_, path.name, (gifs[0],), True)
    problems.append(
        f"{path}: {'several GIFs' if gifs else 'no frame images or GIF'}; expected one GIF or frame images"
    )
    return None


def _frames_of(sequence: RawSequence, bad: list[str]) -> Iterator[np.ndarray]:
    if sequence.is_gif:
        yield from read_gif(sequence.paths[0])
        return
    for path in sequence.paths:
        try:
            yield read_frame(path)
        except CorruptFileError as exc:
            bad.append(str(exc))


def _pretreat_one(job: tuple[RawSequence, Path, int, float | None]) -> _Result:
    """Worker: pretreat one sequence and write its pkl; never raises for a bad input file."""
    sequence, dst, size, min_pixel_sum = job
    bad: list[str] = []
    kept: list[np.ndarray] = []
    skipped = 0
    try:
        for frame in _frames_of(sequence, bad):
            out = pretreat_frame(frame, size, min_pixel_sum)
            if out is None:
                skipped += 1
            else:
                kept.append(out)
        if kept:
            out_dir = dst / sequence.id / sequence.type / sequence.view
            out_dir.mkdir(parents=True, exist_ok=True)
            target = out_dir / f"{sequence.view}.pkl"
            partial = target.with_name(target.name + ".partial")
            save_pickle(np.stack(kept), partial)
            os.replace(partial, target)
    except (DataError, OSError) as exc:
        return _Result(sequence.key, 0, skipped, tuple(bad), str(exc))
    return _Result(sequence.key, len(kept), skipped, tuple(bad), None)


def pretreat_dataset(
    src: str | Path,
    dst: str | Path,
    size: int = 64,
    workers: int = 1,
    min_pixel_sum: float | None = None,
    progress: bool = True,
) -> PretreatSummary:
    """Pretreat every raw sequence under ``src`` into ``dst/<id>/<type>/<view>/<view>.pkl``.

    Bad frames and files are skipped and counted, never abort the run; empty sequences are dropped
    and sequences under 5 frames kept, each reported with one warning.
    """
    _check_size(size)
    if workers < 1:
        raise DataError(f"workers={workers}: use at least 1")
    src, dst = Path(src), Path(dst)
    sequences, problems = find_raw_sequences(src)
    if not sequences:
        raise DataError(f"{src}: no raw sequences found; expected {RAW_LAYOUTS}")
    dst.mkdir(parents=True, exist_ok=True)
    summary = PretreatSummary(sequences_found=len(sequences), failed=list(problems))
    jobs = [(sequence, dst, size, min_pixel_sum) for sequence in sequences]
    bar = tqdm(total=len(jobs), desc="pretreat", unit="seq", disable=not progress)
    if workers == 1:
        results: Iterator[_Result] = map(_pretreat_one, jobs)
        _collect(results, summary, bar)
    else:
        # Not forked from this process: a fork copies the locks its other threads hold (pool_context).
        with pool_context().Pool(min(workers, len(jobs))) as pool:
            _collect(pool.imap_unordered(_pretreat_one, jobs), summary, bar)
    bar.close()
    for items, what in ((summary.empty, "had no usable frame and were dropped"),
                        (summary.short, f"have fewer than {SHORT_SEQUENCE} frames")):
        if items:
            shown = ", ".join(sorted(items)[:5]) + (", ..." if len(items) > 5 else "")
            warnings.warn(f"{src}: {len(items)} sequence(s) {what}: {shown}", stacklevel=2)
    return summary


def _collect(results: Iterator[_Result], summary: PretreatSummary, bar: tqdm) -> None:
    for result in results:
        summary.frames_skipped += result.frames_skipped
        summary.bad_frames.extend(result.bad_frames)
        if result.error is not None:
            summary.failed.append(result.error)
        elif result.frames_written == 0:
            summary.empty.append(result.key)
        else:
            summary.sequences_written += 1
            summary.frames_written += result.frames_written
            if result.frames_written < SHORT_SEQUENCE:
                summary.short.append(result.key)
        bar.update(1)
