"""Log what a trial's hierarchy is: the tree's identity, its cuts per stage, and its files."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.tracking._values import flat_params, format_value

if TYPE_CHECKING:
    import pandas as pd

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
    ``evaluation/`` (view tables as CSV/PNG) and ``checkpoints/``. A ``PartitionTree`` given as
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


def write_view_table(table: pd.DataFrame, out_dir: PathLike, stem: str = "view_table",
                     title: str | None = None) -> tuple[Path, Path]:
    """Write a CASIA-B-style accuracy table (probe views x gallery views) as CSV and a heatmap PNG.

    Args:
        table: numeric frame, rows probe views, columns gallery views (NaN where excluded).
        out_dir: directory for ``<stem>.csv`` and ``<stem>.png`` (created if missing).
        stem: file name without extension.
        title: heading of the figure.
    """
    import numpy as np
    from matplotlib.figure import Figure

    if table.empty:
        raise ValueError(f"view table {stem!r} is empty; nothing to write")
    values = table.to_numpy(dtype=float)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / f"{stem}.csv", out / f"{stem}.png"
    table.to_csv(csv_path, float_format="%.4f")
    n_rows, n_cols = values.shape
    # A bare Figure (no pyplot) keeps this free of global backend state and safe in worker threads.
    fig = Figure(figsize=(1.0 + 0.6 * n_cols, 1.0 + 0.45 * n_rows), dpi=120)
    ax = fig.subplots()
    masked = np.ma.masked_invalid(values)
    image = ax.imshow(masked, cmap="viridis", aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.04)
    ax.set_xticks(range(n_cols), [str(c) for c in table.columns], rotation=45, ha="right")
    ax.set_yticks(range(n_rows), [str(r) for r in table.index])
    ax.set_xlabel(str(table.columns.name or "gallery view"))
    ax.set_ylabel(str(table.index.name or "probe view"))
    finite = values[np.isfinite(values)]
    middle = float(finite.mean()) if finite.size else 0.0
    for r in range(n_rows):
        for c in range(n_cols):
            value = values[r, c]
            if math.isfinite(value):
                ax.text(c, r, f"{value:.1f}", ha="center", va="center", fontsize=7,
                        color="black" if value > middle else "white")
    ax.set_title(title or stem)
    fig.tight_layout()
    fig.savefig(png_path)
    return csv_path, png_path
