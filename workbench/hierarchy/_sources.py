"""Datasets as a subject-labelled list of sequences: OpenGait pkls, packed stores, or raw GIFs/PNGs."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

GROUND_TRUTH_FILE = "ground_truth.json"


@dataclass
class SequenceTable:
    """Sequences of one dataset with the subject each belongs to, loaded on demand.

    ``kind`` is ``opengait``, ``packed``, ``raw`` (``<id>/<type>/<view>`` frames or GIFs) or
    ``gifs`` (a flat folder of animated GIFs, one subject per file); raw inputs are aligned with the
    data package's pretreatment as they are read.
    """

    name: str
    kind: str
    subjects: list[str]
    loader: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.subjects)

    def load(self, index: int) -> np.ndarray:
        """Sequence ``index``: ``uint8 [frames, h, w]``."""
        return self.loader(index)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.load(i) for i in range(len(self)))


def open_sequences(path: str | Path, size: int = 64, subset: str | None = None,
                   partition: str | Path | None = None) -> SequenceTable:
    """Open ``path``: a packed store, an OpenGait pkl tree, a raw frame/GIF tree, or a folder of GIFs.

    ``subset`` (``train``/``test``/``probe``) keeps the ids of ``partition`` (default: the dataset's
    own partition file); raw inputs are pretreated to ``size`` x ``size`` as they are read.
    """
    from workbench.data import (
        find_raw_sequences,
        is_packed_store,
        open_source,
        pretreat_frames,
        pretreat_gif,
        read_frame,
    )

    root = Path(path)
    if not root.exists():
        raise FileNotFoundError(f"{root}: data folder not found")
    if is_packed_store(root) or (root.is_dir() and next(root.rglob("*.pkl"), None) is not None):
        source = open_source(root, partition=partition, subset=subset)
        kind = "packed" if is_packed_store(root) else "opengait"
        return SequenceTable(str(root), kind, [r.id for r in source.records], source.load)
    if not root.is_dir():
        raise ValueError(f"{root}: expected a data folder, not a file")
    if subset is not None:
        raise ValueError(f"{root}: subset={subset!r} needs an OpenGait dataset with partition.json; raw frames "
                         "and GIFs have no partition (pretreat them with `workbench data pretreat` first)")
    gifs = sorted(p for p in root.iterdir() if p.suffix.lower() == ".gif" and p.is_file())
    if gifs:
        return SequenceTable(str(root), "gifs", [p.stem for p in gifs], lambda i: pretreat_gif(gifs[i], size))
    raw, problems = find_raw_sequences(root)
    if not raw:
        detail = f" ({problems[0]})" if problems else ""
        raise ValueError(
            f"{root}: no sequences found{detail}; expected OpenGait pkls <id>/<type>/<view>/*.pkl, raw frames "
            "<id>/<type>/<view>/*.png, GIFs <id>/<type>/<view>.gif, or a folder of *.gif files"
        )

    def load_raw(i: int) -> np.ndarray:
        seq = raw[i]
        if seq.is_gif:
            return pretreat_gif(seq.paths[0], size)
        return pretreat_frames((read_frame(p) for p in seq.paths), size)

    return SequenceTable(str(root), "raw", [s.id for s in raw], load_raw)


def read_ground_truth(path: str | Path, n_rows: int) -> list[int]:
    """True inner part boundaries (rows at ``n_rows`` scale) from a renderer's ``ground_truth.json``.

    The file holds ``row_scale``, ``boundaries`` (names, top to bottom) and ``subjects``
    (``{id: {name: row}}``); the result is the median row per boundary over subjects, rounded.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("subjects"), dict) or not obj["subjects"]:
        raise ValueError(f"{path}: expected an object with per-subject boundary rows under 'subjects'")
    names = obj.get("boundaries")
    scale = obj.get("row_scale", n_rows)
    if not isinstance(scale, (int, float)) or scale <= 0:
        raise ValueError(f"{path}: field 'row_scale' must be a positive number, got {scale!r}")
    rows = []
    for sid, entry in obj["subjects"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: subjects.{sid} must map boundary names to rows")
        order = names if isinstance(names, list) else list(entry)
        try:
            rows.append([float(entry[name]) for name in order])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: subjects.{sid}: missing or non-numeric boundary row ({exc})") from exc
    median = np.median(np.asarray(rows), axis=0) * n_rows / float(scale)
    inner = sorted({int(np.floor(b + 0.5)) for b in median if 0 < np.floor(b + 0.5) < n_rows})
    if not inner:
        raise ValueError(f"{path}: no boundary lies inside rows 1..{n_rows - 1}")
    return inner


__all__ = ["GROUND_TRUTH_FILE", "SequenceTable", "open_sequences", "read_ground_truth"]
