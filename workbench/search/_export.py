"""A study's record without its weights or data: what its reports, tests and comparisons are computed from.

A study's project directory holds gigabytes of rendered data and checkpoints, but its answer rests on
small files: the Optuna study, the validation split, the discovered trees and every seed's saved
evaluations (per-subject scores, on validation and, after the test step, on test). ``export_study``
copies those into a fresh folder, with the study written to a journal file there, so the folder can
be kept, shared or committed, then reported from (``--project-dir``) or extended with more seeds
(``study replicate --all``) once the data is rendered or found again. The record names no folder of the
machine it came from: the project directory is written as ``<project>`` in the files it copies.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import optuna

from workbench.search._config import StudyConfig
from workbench.search._replicates import SEED_CLAIM
from workbench.search._storage import journal_path, open_storage

#: Files a record leaves out: model weights (a record reports from saved evaluations, not models).
WEIGHTS = ("*.pt", "*.pth")

#: Files ``figures=False`` leaves out besides: drawings (the tables and scores behind them stay).
FIGURES = ("*.png", "*.svg")

#: What a record writes for the project directory it was exported from, in every text file it copies:
#: a record names no folder of the machine it ran on, and its trials are found by folder name.
PROJECT_PLACEHOLDER = "<project>"
TEXT_SUFFIXES = (".json", ".jsonl", ".journal", ".toml", ".txt", ".csv", ".yaml")


@dataclass(frozen=True)
class ExportSummary:
    """What an export wrote: the folder, the study's journal, how many files and bytes, what it left out."""

    dest: Path
    journal: Path
    files: int
    size: int
    weights_left_out: int

    def text(self) -> str:
        return (f"exported to {self.dest}: {self.files} files, {self.size / 1e6:.1f} MB (the study in "
                f"{self.journal.name}); {self.weights_left_out} checkpoint(s) and the data left out")


def export_study(config: StudyConfig, storage_url: str, dest: Path, *, figures: bool = True) -> ExportSummary:
    """Copy the study's record into ``dest``; the source is only read.

    ``dest`` may hold other studies' records (one folder can keep several, and ``study compare`` pairs
    them there), but none of this study's: ``FileExistsError`` names what is in the way, so nothing is
    overwritten. ``figures=False`` leaves drawings out too (a record small enough for a repository).
    """
    dest = dest.expanduser().resolve()
    project, name = config.project_dir, config.study.name
    if dest == project or project in dest.parents:
        raise ValueError(f"{dest}: inside the study's project directory {project}; export elsewhere")
    journal = journal_path(dest, name)
    parts = _record_parts(project, name)
    taken = [str(p) for p in (journal, *(dest / part for part in parts),
                              *sorted((dest / "hierarchies").glob(f"{name}-*.json"))) if p.exists()]
    if dest.exists() and not dest.is_dir():
        taken.append(str(dest))
    if taken:
        raise FileExistsError(f"{dest} already holds a record of study {name!r} ({', '.join(taken)}); export into "
                              "another folder (nothing is overwritten)")
    dest.mkdir(parents=True, exist_ok=True)
    optuna.copy_study(from_study_name=name, from_storage=open_storage(storage_url),
                      to_storage=open_storage(f"journal:{journal}"))
    ignored = shutil.ignore_patterns(*WEIGHTS, SEED_CLAIM, *(() if figures else FIGURES))
    left_out = 0
    files = [journal]
    for part in parts:
        source, target = project / part, dest / part
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
            files.append(target)
        elif source.is_dir():
            left_out += sum(len(list(source.rglob(pattern))) for pattern in WEIGHTS)
            shutil.copytree(source, target, ignore=ignored)
            files += [p for p in target.rglob("*") if p.is_file()]
    for path in files:
        if path.suffix in TEXT_SUFFIXES:
            _without_project(path, project)
    return ExportSummary(dest, journal, len(files), sum(p.stat().st_size for p in files), left_out)


def _without_project(path: Path, project: Path) -> None:
    """Write the project directory as ``PROJECT_PLACEHOLDER`` in one copied text file."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return
    if str(project) in text:
        path.write_text(text.replace(str(project), PROJECT_PLACEHOLDER), encoding="utf-8")


def _record_parts(project: Path, name: str) -> list[Path]:
    """The study's files and folders in its project directory, relative to it: what a record holds."""
    trees = sorted(p.relative_to(project) for p in (project / "hierarchies").glob(f"{name}-*.json"))
    return [Path("splits") / f"{name}.json", *trees, Path("trials") / name, Path("reports") / name]
