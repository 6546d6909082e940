"""Trial runs back out of MLflow as a pandas table: one row per trial, params/metrics/tags as columns."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.tracking._runs import (
    ROLE_TRIAL,
    TAG_PARENT,
    TAG_RETRY_OF,
    TAG_ROLE,
    TAG_STATE,
    TAG_STEP,
    TAG_STUDY,
    TAG_TRIAL,
    _quoted,
    search_all_runs,
)
from workbench.tracking._store import TrackingError, make_client, redact_uri

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

_SPLIT_PARAM = re.compile(r"^params\.stage(\d+)\.split$")
BASE_COLUMNS = ("run_id", "run_name", "study", "trial", "retry_of", "state", "status", "parent_run_id",
                "start_time", "end_time", "duration_s")
# Step metrics from the training callback; a comparison shows results, not training curves.
TRAIN_METRIC_PREFIX = "train/"
#: A study trial's choices besides the tree and cuts, as params; the table shows those that vary.
CHOICE_PARAMS = ("model", "channels", "lr", "frames", "fta", "seeds")
#: Study trials log their validation figures as ``val/rank1`` ... and test figures as ``test/rank1``.
VALIDATION_METRIC_PREFIX = "val/"
TEST_METRIC_PREFIX = "test/"


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _row(run: Any) -> dict[str, Any]:
    info, data = run.info, run.data
    tags = data.tags
    state = tags.get(TAG_STATE) or ("running" if info.status == "RUNNING" else str(info.status).lower())
    start, end = info.start_time, info.end_time
    row: dict[str, Any] = {
        "run_id": info.run_id,
        "run_name": info.run_name or tags.get("mlflow.runName", ""),
        "study": tags.get(TAG_STUDY, ""),
        "trial": _int_or_none(tags.get(TAG_TRIAL)),
        "retry_of": _int_or_none(tags.get(TAG_RETRY_OF)),
        "state": state,
        "status": info.status,
        "parent_run_id": tags.get(TAG_PARENT, ""),
        "start_time": start,
        "end_time": end,
        "duration_s": (end - start) / 1000.0 if start and end else None,
    }
    row.update({f"params.{k}": v for k, v in data.params.items()})
    row.update({f"metrics.{k}": float(v) for k, v in data.metrics.items()})
    row.update({f"tags.{k}": v for k, v in tags.items() if not k.startswith("mlflow.")})
    return row


def load_trials(tracking_uri: str, experiment_name: str, filter_string: str | None = None, *,
                study: str | None = None) -> pd.DataFrame:
    """Every trial run of an experiment as a DataFrame, read page by page with ``search_runs``.

    Columns: ``run_id``, ``run_name``, ``study``, ``trial``, ``retry_of``, ``state``
    (complete/pruned/failed/running), ``status``, ``parent_run_id``, times, then ``params.*``,
    ``metrics.*`` (latest values) and ``tags.*``. Works on SQLite, PostgreSQL and MLflow servers.

    Args:
        tracking_uri: a resolved tracking URI.
        experiment_name: the experiment to read.
        filter_string: an MLflow filter, e.g. ``"params.tree_id = 'abc' AND metrics.rank1 > 0.5"``.
        study: only trials of this study.
    """
    import pandas as pd
    from mlflow.exceptions import MlflowException

    client = make_client(tracking_uri)
    experiment = client.get_experiment_by_name(experiment_name)
    if experiment is None:
        names = experiment_names(tracking_uri)
        raise TrackingError(
            f"no experiment {experiment_name!r} at {redact_uri(tracking_uri)}; experiments there: "
            f"{', '.join(names) or 'none'}. Pass one of them (--experiment NAME)"
        )
    query = f"tags.`{TAG_ROLE}` = '{ROLE_TRIAL}'"
    if study is not None:
        query += f" AND tags.`{TAG_STUDY}` = {_quoted(study, 'study name')}"
    if filter_string and filter_string.strip():
        query += f" AND {filter_string.strip()}"
    try:
        runs = search_all_runs(client, [experiment.experiment_id], query)
    except MlflowException as exc:
        raise TrackingError(
            f"MLflow rejected the filter {filter_string!r}: {exc.message}. Filters look like "
            "\"params.tree_id = 'abc' AND metrics.rank1 > 0.5\" (AND only, strings in single quotes)"
        ) from exc
    frame = pd.DataFrame([_row(r) for r in runs])
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in BASE_COLUMNS})
    for column in ("trial", "retry_of"):
        frame[column] = frame[column].astype("Int64")
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], unit="ms", utc=True)
    frame = frame.sort_values(["study", "trial", "start_time"], kind="stable", na_position="last")
    return frame.reset_index(drop=True)


def experiment_names(tracking_uri: str) -> list[str]:
    """Names of the active experiments in a store, sorted."""
    return sorted(e.name for e in make_client(tracking_uri).search_experiments())


def resolve_column(df: pd.DataFrame, name: str) -> str:
    """The column ``name`` refers to: itself, else ``metrics.<name>``, else the validation figure
    ``metrics.val/<name>`` (what a study's trials are selected on), else ``params.<name>``."""
    for candidate in (name, f"metrics.{name}", f"metrics.{VALIDATION_METRIC_PREFIX}{name}", f"params.{name}"):
        if candidate in df.columns:
            return candidate
    metrics = sorted(c.removeprefix("metrics.") for c in df.columns if c.startswith("metrics."))
    raise ValueError(
        f"no column or metric named {name!r} among the trials; metrics available: "
        f"{', '.join(metrics) or 'none'}"
    )


def numeric_column(df: pd.DataFrame, name: str) -> pd.Series:
    """Column ``name`` (see ``resolve_column``) as floats; text that is not a number becomes NaN."""
    import pandas as pd

    return pd.to_numeric(df[resolve_column(df, name)], errors="coerce").astype(float)


def _text(row: Any, column: str) -> str:
    import pandas as pd

    value = row.get(column) if hasattr(row, "get") else None
    return "" if value is None or pd.isna(value) else str(value)


def tree_label(row: Any) -> str:
    """A trial's tree: its name, else the first 8 characters of its id, else ``?``."""
    return _text(row, "params.tree_name") or _text(row, "params.tree_id")[:8] or "?"


def run_label(row: Any) -> str:
    """A trial run's point label from its MLflow row: number, tree and cuts, e.g. ``#3 casia-b-paper [1, 2, 4]``.

    ``workbench.search.trial_label`` labels an Optuna trial instead (tree and cuts, no number).
    """
    trial = _text(row, "trial")
    number = f"#{trial} " if trial else ""
    cuts = _text(row, "params.cuts")
    tree = tree_label(row)
    return f"{number}{tree} {cuts}".strip()


def comparison_table(df: pd.DataFrame, sort_by: str | None = None, ascending: bool = False,
                     pareto: Sequence[bool] | np.ndarray | None = None) -> pd.DataFrame:
    """A readable table of trials: trial, state, tree, cuts, the step its figures come from, the other
    choices that vary among the trials (``CHOICE_PARAMS``), each stage's split list, then metrics.

    Metrics are the results and costs (``rank1``, ``gflops``, ``params`` ...), ``sort_by`` first;
    training curves under ``train/`` and per-module breakdowns (``gflops.arme3`` beside ``gflops``)
    are left out. Rows are sorted by ``sort_by`` (NaN last; by a ``val/`` or ``test/`` figure, complete
    trials first, since a pruned trial's figure comes from an earlier step); the
    ``run_id`` column comes last. ``pareto`` (a mask aligned with ``df``, see ``pareto_mask``) adds
    a ``pareto`` column.
    """
    import pandas as pd

    table = pd.DataFrame(index=df.index)
    for column in ("study", "trial", "state"):
        if column in df.columns:
            table[column] = df[column]
    if pareto is not None:
        if len(pareto) != len(df):
            raise ValueError(f"pareto mask has {len(pareto)} entries for {len(df)} trials")
        table["pareto"] = [bool(v) for v in pareto]
    if "study" in table.columns and table["study"].nunique(dropna=True) <= 1:
        table = table.drop(columns="study")
    table["tree"] = [tree_label(row) for _, row in df.iterrows()]
    if "params.cuts" in df.columns:
        table["cuts"] = df["params.cuts"]
    if f"tags.{TAG_STEP}" in df.columns:
        table["step"] = pd.to_numeric(df[f"tags.{TAG_STEP}"], errors="coerce").astype("Int64")
    for name in CHOICE_PARAMS:  # what the search varied, beside the tree and cuts
        column = f"params.{name}"
        if column in df.columns and df[column].nunique(dropna=True) > 1:
            table[name] = df[column]
    splits = sorted((int(m.group(1)), c) for c in df.columns if (m := _SPLIT_PARAM.match(c)))
    for _, column in splits:
        table[column.removeprefix("params.")] = df[column]
    metric_columns = [c for c in df.columns if c.startswith("metrics.")
                      and not c.removeprefix("metrics.").startswith(TRAIN_METRIC_PREFIX)
                      and c.rpartition(".")[0] not in df.columns]
    sort_column = resolve_column(df, sort_by) if sort_by else None
    if sort_column and sort_column in metric_columns:
        metric_columns.remove(sort_column)
    ordered = ([sort_column] if sort_column else []) + sorted(metric_columns)
    for column in ordered:
        name = column.removeprefix("metrics.").removeprefix("params.")
        if name in table.columns:
            name = column
        table[name] = pd.to_numeric(df[column], errors="coerce") if column.startswith("metrics.") else df[column]
    if "run_id" in df.columns:
        table["run_id"] = df["run_id"]
    if sort_column:
        key = numeric_column(df, sort_by or "")
        if key.isna().all():
            # A text column (a param such as tree_name) sorts alphabetically instead.
            key = df[sort_column].astype(str)
        order = key.sort_values(ascending=ascending, na_position="last", kind="stable").index
        figure = sort_column.removeprefix("metrics.").startswith((VALIDATION_METRIC_PREFIX, TEST_METRIC_PREFIX))
        if figure and "state" in df.columns:
            # A pruned trial's evaluation figure is from an earlier step: it is listed after every
            # complete trial, never ranked among final figures (costs rank every trial alike).
            final = df.loc[order, "state"] == "complete"
            order = order[final.to_numpy()].append(order[~final.to_numpy()])
        table = table.loc[order]
    return table.reset_index(drop=True)
