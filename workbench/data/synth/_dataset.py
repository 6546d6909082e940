"""Write a whole synthetic dataset in OpenGait's layout, with its partition and ground-truth files."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from workbench import __version__
from workbench._process import pool_context
from workbench.config import to_dict
from workbench.data._pickle import save_pickle
from workbench.data.synth._config import SynthConfig, condition_of, subject_name, view_name
from workbench.data.synth._render import BOUNDARY_NAMES, PART_NAMES, render_dataset_sequence

GROUND_TRUTH_ROWS = 64  # boundary rows in ground_truth.json are given at the 64-row aligned scale
_SUBJECT_DIR = re.compile(r"^\d+$")


@dataclass(frozen=True)
class SynthSummary:
    """What ``render_dataset`` wrote."""

    root: Path
    sequences: int
    frames: int
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.sequences} sequences ({self.frames} frames) of {len(self.train_ids) + len(self.test_ids)} "
            f"subjects ({len(self.train_ids)} train, {len(self.test_ids)} test) in {self.root}"
        )


@dataclass(frozen=True)
class _Job:
    root: Path
    config: SynthConfig
    subject: int
    seq_type: str
    view: int


def _render_job(job: _Job) -> tuple[int, np.ndarray]:
    """Render and write one sequence; return its frame count and the sum of its boundary rows."""
    sequence = render_dataset_sequence(job.config, job.subject, job.seq_type, job.view)
    name = view_name(job.view)
    folder = job.root / subject_name(job.subject, job.config.subjects) / job.seq_type / name
    folder.mkdir(parents=True, exist_ok=True)
    save_pickle(sequence.silhouettes, folder / f"{name}.pkl")
    return len(sequence.silhouettes), sequence.boundary_rows.sum(axis=0)


def _jobs(root: Path, config: SynthConfig) -> list[_Job]:
    return [
        _Job(root, config, subject, seq_type, view)
        for subject in range(1, config.subjects + 1)
        for seq_type in config.types
        for view in config.views
    ]


def _prepare(root: Path, overwrite: bool) -> None:
    """Make ``root`` ready: empty, or (with ``overwrite``) cleared of a previous synthetic dataset."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a directory; choose another --out")
    root.mkdir(parents=True, exist_ok=True)
    entries = list(root.iterdir())
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(
            f"{root}: directory is not empty; choose an empty or new directory, or pass --overwrite "
            "to replace a dataset rendered there before"
        )
    ours = {"partition.json", "ground_truth.json"}
    foreign = [e.name for e in entries if not (e.name in ours or (e.is_dir() and _SUBJECT_DIR.match(e.name)))]
    if foreign:
        raise FileExistsError(
            f"{root}: holds files that are not a synthetic dataset ({', '.join(sorted(foreign)[:3])}); "
            "refusing to overwrite, choose another directory"
        )
    for entry in entries:
        if entry.is_dir():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def render_dataset(
    out_dir: str | Path,
    config: SynthConfig | None = None,
    *,
    workers: int = 1,
    progress: bool = False,
    overwrite: bool = False,
) -> SynthSummary:
    """Render ``config`` into ``out_dir``: ``<id>/<type>/<view>/<view>.pkl``, ``partition.json``, ``ground_truth.json``.

    Every sequence is seeded by (seed, subject, type, view), so the bytes written do not depend on
    ``workers``. ``progress`` shows a tqdm bar over sequences. ``partition.json`` is written last,
    so its presence marks a complete dataset.

    Example:
        >>> summary = render_dataset("data/synth-tiny", SynthConfig.tiny())  # doctest: +SKIP
    """
    config = config or SynthConfig()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: expected a whole number >= 1, got {workers!r}")
    root = Path(out_dir)
    _prepare(root, overwrite)
    jobs = _jobs(root, config)
    results = list(tqdm(_run(jobs, workers), total=len(jobs), unit="seq", desc="rendering", disable=not progress))

    ids = config.subject_ids
    # The validation subjects are training subjects that a study holds out; they come last.
    train, test = ids[: config.train_count] + config.validation_ids, config.test_ids
    (root / "ground_truth.json").write_text(json.dumps(_ground_truth(config, jobs, results), indent=1) + "\n")
    # Written last: its presence marks a complete dataset.
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": train, "TEST_SET": test}, indent=1) + "\n")
    return SynthSummary(
        root=root,
        sequences=len(jobs),
        frames=sum(count for count, _ in results),
        train_ids=tuple(train),
        test_ids=tuple(test),
    )


def _run(jobs: list[_Job], workers: int) -> Iterator[tuple[int, np.ndarray]]:
    """Results in job order, rendered in this process or in a pool of worker processes."""
    if workers == 1 or len(jobs) < 2:
        yield from map(_render_job, jobs)
        return
    # Each job carries everything it needs and seeds its own generator, so workers depend on no state
    # inherited from the caller; they are not forked from it (pool_context: a fork copies the locks the
    # caller's other threads hold, and a worker that needs one never returns).
    chunk = max(1, min(16, len(jobs) // (8 * workers)))
    with pool_context().Pool(min(workers, len(jobs)), initializer=_init_worker) as pool:
        yield from pool.imap(_render_job, jobs, chunksize=chunk)


def _init_worker() -> None:
    """One BLAS thread per worker: the renderer's matrix products are tiny, and workers share the cores."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return
    threadpool_limits(1)


def _ground_truth(config: SynthConfig, jobs: list[_Job], results: list[tuple[int, np.ndarray]]) -> dict[str, Any]:
    """Per subject, the mean boundary rows over its ``nm`` frames (all frames if no ``nm`` type was rendered)."""
    nm_types = [t for t in config.types if condition_of(t) == "nm"]
    used = set(nm_types or config.types)
    totals: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    # Summed in job order, so the floats do not depend on how many workers rendered them.
    for job, (count, row_sum) in zip(jobs, results, strict=True):
        if job.seq_type in used:
            totals[job.subject] = totals.get(job.subject, np.zeros(len(BOUNDARY_NAMES))) + row_sum
            counts[job.subject] = counts.get(job.subject, 0) + count
    to_64 = GROUND_TRUTH_ROWS / config.size
    subjects = {
        subject_name(s, config.subjects): {
            name: round(float(value), 4) for name, value in zip(BOUNDARY_NAMES, totals[s] / counts[s] * to_64, strict=True)
        }
        for s in sorted(totals)
    }
    return {
        "row_scale": GROUND_TRUTH_ROWS,
        "description": (
            "Rows where body parts meet, mean over each subject's frames of the types in "
            "metadata.ground_truth_types; continuous, 0 = top edge of the aligned frame, at the "
            f"{GROUND_TRUTH_ROWS}-row scale (multiply by size/{GROUND_TRUTH_ROWS} for other frame sizes)."
        ),
        "parts": list(PART_NAMES),
        "boundaries": list(BOUNDARY_NAMES),
        "subjects": subjects,
        "metadata": {
            "generator": "workbench.data.synth",
            "version": __version__,
            "ground_truth_types": sorted(used),
            "config": to_dict(config),
        },
    }
