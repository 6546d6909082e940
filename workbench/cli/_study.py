"""``workbench study run|report``: Optuna studies over hierarchies, tracked in MLflow."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("study", help="run or report an Optuna study over hierarchies (studies/*.toml)")
    sub = parser.add_subparsers(title="study commands", metavar="STUDY_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)

    run = sub.add_parser("run", help="run or resume a study until its trial budget is met")
    run.add_argument("file", type=Path, help="study file (TOML), e.g. studies/quick-synthetic.toml")
    run.add_argument("--storage", default=None,
                     help="Optuna storage URL: sqlite:///ABS.db (one process), journal:/ABS.journal (workers on "
                     "one machine), postgresql://user@host/db (several machines); default: under the project dir")
    run.add_argument("--n-trials", type=int, default=None, help="trial budget (default: the file's budget.trials)")
    run.add_argument("--workers", type=int, default=1, help="worker processes on this machine (journal storage)")
    run.add_argument("--project-dir", type=Path, default=None,
                     help="where data, trees, trials and stores go (default: the file's study.project_dir)")
    run.set_defaults(func=run_handler)

    report = sub.add_parser("report", help="best trials or Pareto front, importances, figures")
    report.add_argument("file", type=Path, help="the study file the study was run from")
    report.add_argument("--storage", default=None, help="storage URL if not the default")
    report.add_argument("--project-dir", type=Path, default=None, help="project dir if not the file's")
    report.add_argument("--out", type=Path, default=None, help="figure folder (default: PROJECT/reports/NAME)")
    report.set_defaults(func=report_handler)


def _check_file(path: Path) -> None:
    from workbench.cli import CLIError

    if not path.is_file():
        raise CLIError(f"{path}: study file not found; the shipped studies are in studies/*.toml")


def run_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study run``."""
    from workbench.cli import CLIError
    from workbench.config import ConfigError
    from workbench.search import StorageError, run_study

    _check_file(args.file)
    if args.workers < 1:
        raise CLIError(f"--workers {args.workers}: give 1 or more")
    try:
        summary = run_study(args.file, storage_url=args.storage, n_trials=args.n_trials,
                            workers=args.workers, project_dir=args.project_dir)
    except (ConfigError, StorageError) as exc:
        raise CLIError(str(exc)) from exc
    print(f"study {summary.study_name} ({summary.storage_url}): {summary.complete} complete, "
          f"{summary.pruned} pruned, {summary.failed} failed, {summary.running} running, {summary.waiting} waiting")
    for row in summary.best:
        print(f"  best trial {row['number']}: values {row['values']} params {row['params']}")
    return 0


def report_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study report``."""
    import optuna

    from workbench.cli import CLIError
    from workbench.search import build_report, choose_storage_url, load_study_config, open_storage

    _check_file(args.file)
    config = load_study_config(args.file, project_dir=args.project_dir)
    url = choose_storage_url(config, config.project_dir, args.storage, 1)
    try:
        study = optuna.load_study(study_name=config.study.name, storage=open_storage(url))
    except KeyError as exc:
        raise CLIError(f"study {config.study.name!r} not found in {url}; run `workbench study run {args.file}` "
                       "first, or pass --storage") from exc
    out = args.out or config.project_dir / "reports" / config.study.name
    report = build_report(study, [o.metric for o in config.objectives], out)
    print(report.text())
    print(f"report: {out / 'report.json'}")
    print(f"dashboard: optuna-dashboard {url}")
    return 0
