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


def open_sequences(path: str | Path, size: int = 64) -> SequenceTable:
    """Open ``path``: a packed store, an OpenGait pkl tree, a raw frame/GIF tree, or a folder of GIFs."""
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
        source = open_source(root)
        kind = "packed" if is_packed_store(root) else "opengait"
        return SequenceTable(str(root), kind, [r.id for r in source.records], source.load)
    if not root.is_dir():
        raise ValueError(f"{root}: expected a data folder, not a file")
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

    Accepts per-subject boundary rows (``{"subjects": {id: {"boundaries": [...]}}}``, a mapping of
    id to rows, or a top-level ``boundaries`` list) and takes the median per boundary over subjects.
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from exc
    scale = float(n_rows)
    declared = obj.get("size", obj.get("n_rows")) if isinstance(obj, dict) else None
    if isinstance(declared, (int, float)):
        scale = float(declared)
    rows = _boundary_rows(obj, path)
    if rows.ndim != 2 or rows.shape[1] < 1:
        raise ValueError(f"{path}: boundary rows must be one list of numbers per subject, got shape {list(rows.shape)}")
    median = np.median(rows, axis=0) * n_rows / scale
    inner = sorted({int(np.floor(b + 0.5)) for b in median if 0 < np.floor(b + 0.5) < n_rows})
    if not inner:
        raise ValueError(f"{path}: no boundary lies inside rows 1..{n_rows - 1}")
    return inner


def _boundary_rows(obj: object, path: Path) -> np.ndarray:
    if isinstance(obj, dict) and isinstance(obj.get("boundaries"), list) and obj["boundaries"]:
        first = obj["boundaries"][0]
        return np.atleast_2d(np.asarray(obj["boundaries"] if isinstance(first, list) else [obj["boundaries"]], float))
    subjects = obj.get("subjects", obj) if isinstance(obj, dict) else None
    if not isinstance(subjects, dict) or not subjects:
        raise ValueError(f"{path}: expected per-subject boundary rows under 'subjects'")
    rows = []
    for sid, entry in subjects.items():
        values = entry.get("boundary_rows", entry.get("boundaries")) if isinstance(entry, dict) else entry
        if isinstance(values, dict):
            values = list(values.values())
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise ValueError(f"{path}: subject {sid!r}: boundary rows must be a list of numbers")
        rows.append(values)
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"{path}: subjects list different numbers of boundaries")
    return np.asarray(rows, dtype=np.float64)


__all__ = ["GROUND_TRUTH_FILE", "SequenceTable", "open_sequences", "read_ground_truth"]
