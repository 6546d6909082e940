"""Per-tree comparison of logged trials: each trial's saved evaluations, grouped by tree and cuts.

A trial run records where it trained (tag ``workbench.output_dir``) and on which seeds (param
``seeds``); its evaluations lie there (``evaluation/`` on validation subjects, ``test/`` after the
test step; ``seed-<s>/`` per seed when there are several, ``confirm/seed-<s>/`` for the fresh seeds
``workbench study replicate`` adds). The statistics are
``workbench.evaluation.compare_configurations``: intervals over seeds and subjects, paired deltas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from workbench.evaluation import has_saved_result
from workbench.tracking._compare import tree_label

#: Evaluation folder of each split inside a replicate's folder.
SPLIT_FOLDERS = {"validation": "evaluation", "test": "test"}


def _seeds(row: Any) -> list[int] | None:
    text = row.get("params.seeds") if hasattr(row, "get") else None
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        return [int(s) for s in json.loads(text)]
    except (ValueError, TypeError):
        return None


#: The folder under a trial's own where ``workbench study replicate`` trains fresh seeds.
CONFIRM_FOLDER = "confirm"


def replicate_folder(folder: Path, seed: int, n_seeds: int) -> Path:
    """Where one of a trial's own seeds trains: the trial's folder with one seed, ``seed-<s>/`` with several."""
    return folder if n_seeds == 1 else folder / f"seed-{seed}"


def confirm_folder(folder: Path, seed: int) -> Path:
    """Where a fresh seed of the trial in ``folder`` trains: ``confirm/seed-<s>/``, beside the trial's own."""
    return folder / CONFIRM_FOLDER / f"seed-{seed}"


def seed_folders(folder: Path, seeds: list[int]) -> dict[int, Path]:
    """Seed -> folder for every seed a trial's configuration was trained on: its own ``seeds``, then the
    fresh ones, each counted once ``study replicate`` has evaluated it on the validation subjects."""
    out = {seed: replicate_folder(folder, seed, len(seeds)) for seed in seeds}
    fresh = folder / CONFIRM_FOLDER
    if fresh.is_dir():
        for path in fresh.glob("seed-*"):
            seed = path.name.removeprefix("seed-")
            if seed.isdigit() and int(seed) not in out and has_saved_result(path / SPLIT_FOLDERS["validation"]):
                out[int(seed)] = path
    return dict(sorted(out.items()))


def split_evaluations(folder: Path, seeds: list[int], split: str) -> dict[int, Path]:
    """Seed -> saved ``split`` evaluation folder of every seed in ``seed_folders(folder, seeds)`` that has one."""
    found = {seed: path / SPLIT_FOLDERS[split] for seed, path in seed_folders(folder, seeds).items()}
    return {seed: path for seed, path in found.items() if has_saved_result(path)}


def trial_run_folder(recorded: Path, project_dir: Path | None = None) -> Path:
    """Where a trial's folder is now: the same ``trials/<study>/<trial>`` under ``project_dir`` (the project
    read from, which may be a moved or copied project or an exported record) when it is there, else
    ``recorded`` (where it trained: the run's ``workbench.output_dir`` tag, the trial's ``output_dir``)."""
    if project_dir is None or len(recorded.parts) < 3 or recorded.parts[-3] != "trials":
        return recorded
    here = project_dir.joinpath(*recorded.parts[-3:])
    return here if here.is_dir() else recorded


def run_evaluations(row: Any, split: str = "validation", project_dir: Path | None = None) -> dict[int, Path]:
    """Seed -> evaluation folder (with ``subject_scores.npz``) of one trial run; empty when none is saved.
    ``project_dir``: where the study's project is now, if it may have moved since (``trial_run_folder``)."""
    folder_text = row.get("tags.workbench.output_dir") if hasattr(row, "get") else None
    if not isinstance(folder_text, str) or not folder_text:
        return {}
    return split_evaluations(trial_run_folder(Path(folder_text), project_dir), _seeds(row) or [0], split)


def tree_groups(
    trials: pd.DataFrame, split: str = "validation", project_dir: Path | None = None
) -> tuple[dict[str, dict[int, list[Any]]], dict[str, list[int]], dict[str, dict[str, float]]]:
    """Complete trials grouped by ``"<tree> <cuts>"``: seed -> loaded results, each group's cuts and cost.
    ``project_dir``: where the study's project is now (see ``trial_run_folder``)."""
    from workbench.evaluation import load_result

    groups: dict[str, dict[int, list[Any]]] = {}
    cuts: dict[str, list[int]] = {}
    costs: dict[str, dict[str, float]] = {}
    complete = trials[trials["state"] == "complete"] if "state" in trials.columns else trials
    for _, row in complete.iterrows():
        folders = run_evaluations(row, split, project_dir)
        if not folders:
            continue
        levels = row.get("params.cuts", "")
        label = f"{row.get('params.tree') or tree_label(row)} {levels}".strip()
        try:
            cuts[label] = [int(v) for v in json.loads(levels)] if levels else []
        except (ValueError, TypeError):
            cuts[label] = []
        costs[label] = {k: float(row[f"metrics.{k}"]) for k in ("params", "gflops")
                        if f"metrics.{k}" in row.index and pd.notna(row[f"metrics.{k}"])}
        for seed, path in folders.items():
            groups.setdefault(label, {}).setdefault(seed, []).append(load_result(path))
    return groups, cuts, costs


def compare_logged_trees(trials: pd.DataFrame, *, split: str = "validation", reference: str | None = None,
                         key: str = "rank1", project_dir: Path | None = None) -> tuple[list[Any], str, str]:
    """``(rows, reference, verdict)`` of the per-tree comparison of logged trials on ``split``.

    ``reference`` names a tree (its first group) or a group label; by default the uniform tree.
    ``project_dir``: where the study's project is now, when it may have been moved since it ran.
    Raises ``ValueError`` when no complete trial has saved evaluations on that split.
    """
    from workbench.evaluation import compare_configurations, verdict

    groups, cuts, costs = tree_groups(trials, split, project_dir)
    if not groups:
        raise ValueError(f"no complete trial has saved {split} evaluations (subject_scores.npz) in its folder; "
                         "trials of studies run with this version save them"
                         + (", and `workbench study test FILE --all` writes the test ones" if split == "test" else ""))
    labels = sorted(groups)
    if reference is None:
        reference = next((g for g in labels if g.startswith("uniform")), labels[0])
    elif reference not in groups:
        matches = [g for g in labels if g.split(" ")[0] == reference]
        if not matches:
            raise ValueError(f"reference {reference!r}: no complete trial of it; trees: {', '.join(labels)}")
        reference = matches[0]
    probe = next(iter(next(iter(groups.values())).values()))[0]
    summary = probe.summary()
    if key not in summary:
        key = f"{key}_mean" if f"{key}_mean" in summary else probe.primary_metric
    rows = compare_configurations(groups, reference, key=key, cuts=cuts, extra=costs)
    return rows, reference, verdict(rows, reference)
