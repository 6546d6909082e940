"""``workbench compare``: the trials of an MLflow experiment as a sorted table and a Pareto plot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from workbench.cli import CLIError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare logged trials: table sorted by objective, Pareto front PNG and CSV",
        description="Read the trial runs of an MLflow experiment, print them sorted by an objective with "
        "their split lists and costs, and write trials.csv and pareto.png to --out.",
    )
    parser.add_argument("--tracking-uri", default=None,
                        help="sqlite:///path.db, postgresql://... or http(s)://server (default: "
                        "sqlite:///<current dir>/mlflow.db)")
    parser.add_argument("--experiment", default=None,
                        help="MLflow experiment name (default: the only experiment in the store)")
    parser.add_argument("--study", default=None, help="only the trials of this study")
    parser.add_argument("--filter", default=None, dest="filter_string",
                        help="MLflow filter, e.g. \"params.tree_id = 'abc' AND metrics.rank1 > 0.5\"")
    parser.add_argument("--objectives", nargs="+", default=["rank1:max", "gflops:min"], metavar="NAME:DIR",
                        help="objectives with direction max or min (default: rank1:max gflops:min)")
    parser.add_argument("--sort", default=None, metavar="METRIC",
                        help="metric to sort by (default: the first objective, best first)")
    parser.add_argument("--all-states", action="store_true",
                        help="let pruned, failed and running trials onto the Pareto front (default: complete only)")
    parser.add_argument("--out", type=Path, default=Path("compare"), help="directory for trials.csv and pareto.png")
    parser.add_argument("--by", choices=["trial", "tree"], default="trial",
                        help="'tree': one row per tree and cuts over the shared seeds, with intervals and the "
                        "paired difference to --reference (read from the trials' saved evaluations)")
    parser.add_argument("--reference", default=None,
                        help="with --by tree: the tree the others are paired with (default: the uniform tree)")
    parser.add_argument("--split", choices=["validation", "test"], default="validation",
                        help="with --by tree: compare on validation (default) or, after `study test --all`, test")
    parser.set_defaults(func=run_compare)


def _existing_store(given: str | None) -> str:
    """The tracking URI to read: the one given, else ``./mlflow.db``, else ``./workbench-home/mlflow.db``.

    A SQLite file that does not exist is an error here: a read-only command must not create a store.
    """
    if given is None:
        for candidate in (Path.cwd() / "mlflow.db", Path.cwd() / "workbench-home" / "mlflow.db"):
            if candidate.is_file():
                return f"sqlite:///{candidate.resolve().as_posix()}"
        raise CLIError("no MLflow store here: neither ./mlflow.db nor ./workbench-home/mlflow.db exists (studies "
                       "and the demo keep theirs in their project dir); pass --tracking-uri sqlite:///ABS/PATH/mlflow.db")
    if given.startswith("sqlite:///"):
        path = Path(given[len("sqlite:///"):]).expanduser()
        path = path if path.is_absolute() else Path.cwd() / path
        if not path.is_file():
            raise CLIError(f"--tracking-uri {given}: {path} does not exist; name the mlflow.db a study or the demo "
                           "printed (compare only reads)")
    return given


def _store_folder(uri: str) -> Path | None:
    """The folder of a SQLite store: a study's project, where its trial folders are even after a move."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///"):]).parent  # absolute: resolve_tracking_uri made it so


def _pick_experiment(uri: str, given: str | None) -> str:
    from workbench.tracking import experiment_names

    if given:
        return given
    names = [n for n in experiment_names(uri) if n != "Default"]
    if len(names) == 1:
        return names[0]
    listed = ", ".join(names) if names else "none besides Default"
    raise CLIError(f"choose an experiment with --experiment NAME; experiments in the store: {listed}")


def run_compare(args: argparse.Namespace) -> int:
    """Load, sort and print the trials; write the CSV and the Pareto figure."""
    import pandas as pd

    from workbench.tracking import (
        TrackingError,
        comparison_table,
        load_trials,
        pareto_figure,
        pareto_mask,
        parse_objectives,
        redact_uri,
        resolve_column,
        resolve_tracking_uri,
    )

    try:
        objectives = parse_objectives(args.objectives)
        uri = resolve_tracking_uri(_existing_store(args.tracking_uri), Path.cwd())
        experiment = _pick_experiment(uri, args.experiment)
        trials = load_trials(uri, experiment, args.filter_string, study=args.study)
    except (TrackingError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    if trials.empty:
        where = f" matching {args.filter_string!r}" if args.filter_string else ""
        raise CLIError(f"no trial runs{where} in experiment {experiment!r} at {redact_uri(uri)}")
    if args.by == "tree":
        return _compare_trees(trials, args, experiment, uri)
    sort_by = args.sort or next(iter(objectives))
    try:
        for name in [*objectives, sort_by]:
            resolve_column(trials, name)
    except ValueError as exc:
        raise CLIError(f"{exc}; choose others with --objectives / --sort") from exc
    ascending = objectives.get(sort_by) == "min"

    candidates = trials if args.all_states else trials[trials["state"] == "complete"]
    front = pd.Series(False, index=trials.index)
    front[candidates.index] = pareto_mask(candidates, objectives)
    table = comparison_table(trials, sort_by, ascending, pareto=front.to_numpy())

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "trials.csv"
    table.to_csv(csv_path, index=False)
    shown = table.drop(columns=["run_id"], errors="ignore")
    print(f"{len(trials)} trials of experiment {experiment!r} at {redact_uri(uri)}, sorted by {sort_by} "
          f"({'ascending' if ascending else 'descending'}); pareto = on the front of "
          + ", ".join(f"{k}:{v}" for k, v in objectives.items()))
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", na_rep="-"))
    print(f"table: {csv_path}")
    if len(objectives) < 2:
        print("no Pareto figure: it needs two objectives", file=sys.stderr)
        return 0
    try:
        png = pareto_figure(candidates, objectives, out / "pareto.png")
    except ValueError as exc:
        print(f"no Pareto figure: {exc}", file=sys.stderr)
        return 0
    print(f"pareto figure: {png}")
    return 0


def _compare_trees(trials: Any, args: argparse.Namespace, experiment: str, uri: str) -> int:
    """``--by tree``: the per-tree table and verdict; nothing is written."""
    from workbench.evaluation import sizing
    from workbench.evaluation._replicates import format_rows
    from workbench.tracking import compare_logged_trees

    objective = next(iter(args.objectives)).split(":")[0]
    try:
        rows, reference, verdict = compare_logged_trees(trials, split=args.split, reference=args.reference,
                                                        key=objective, project_dir=_store_folder(uri))
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    print(f"experiment {experiment!r}, {args.split} subjects: each tree and cut over its seeds (95 % interval over "
          f"seeds and a subject bootstrap), paired seed by seed with {reference} (Holm-corrected p)")
    print(format_rows(rows, objective))
    planned = sizing(rows)
    if planned is not None:
        print(f"sizing: {planned.text()}")
    print(f"verdict: {verdict}")
    return 0
