"""Log what a trial's hierarchy is: the tree's identity, its cuts per stage, and its files."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.tracking._values import flat_params, format_value

if TYPE_CHECKING:
    from workbench.hierarchy import PartitionTree
    from workbench.tracking._runs import TrialRun

PathLike = str | Path


def hierarchy_params(tree: PartitionTree, stage_splits: Sequence[Sequence[int]] = (),
                     cut_ks: Sequence[int] = ()) -> dict[str, str]:
    """The flat params that identify a trial's hierarchy, as ``load_trials`` and the Pareto plot read them.

    Keys: ``tree_id``, ``tree_name``, ``tree_rows``, ``provenance.<field>``, ``stage<i>.split``
    (1-based, the split list at that stage's height, e.g. ``"[8, 32, 16, 8]"``) and ``cuts`` (the
    region count chosen per stage, e.g. ``"[1, 2, 4]"``).

    Args:
        tree: the partition tree the model was built from.
        stage_splits: split list of every stage, coarse to fine, at the stage's own height.
        cut_ks: number of regions chosen at each stage.
    """
    params: dict[str, Any] = {"tree_id": tree.tree_id, "tree_name": tree.name, "tree_rows": tree.n_rows}
    params.update(flat_params(dict(tree.provenance), prefix="provenance."))
    for i, split in enumerate(stage_splits, start=1):
        sizes = [int(s) for s in split]
        if not sizes or any(s < 1 for s in sizes):
            raise ValueError(f"stage {i} split {list(split)} must be a non-empty list of positive heights")
        params[f"stage{i}.split"] = sizes
    if cut_ks:
        params["cuts"] = [int(k) for k in cut_ks]
    return {k: format_value(v) for k, v in params.items()}


def log_hierarchy(run: TrialRun, params: Mapping[str, Any], *, tree: PartitionTree | PathLike | None = None,
                  dendrogram: PathLike | None = None, config_file: PathLike | None = None,
                  view_tables: Iterable[PathLike] = (), checkpoint: PathLike | None = None) -> None:
    """Log a trial's hierarchy params (a flat dict, see ``hierarchy_params``) and its files.

    Artifacts land in ``hierarchy/`` (tree JSON, dendrogram PNG), ``config/`` (the resolved config),
    ``evaluation/`` (the CASIA-B-style view tables ``rank1_views.csv`` / ``.png`` that the evaluation
    results write) and ``checkpoints/``. A ``PartitionTree`` given as
    ``tree`` is written as ``<name or tree_id>.json`` first.
    """
    run.log_params(params)
    if tree is not None:
        if isinstance(tree, (str, Path)):
            run.log_artifact(tree, "hierarchy")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                file = Path(tmp) / f"{tree.name or tree.tree_id}.json"
                tree.save(file)
                run.log_artifact(file, "hierarchy")
    if dendrogram is not None:
        run.log_artifact(dendrogram, "hierarchy")
    if config_file is not None:
        run.log_artifact(config_file, "config")
    for table in view_tables:
        run.log_artifact(table, "evaluation")
    if checkpoint is not None:
        run.log_artifact(checkpoint, "checkpoints")
