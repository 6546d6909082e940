"""``workbench study run|report|test``: Optuna studies over hierarchies, tracked in MLflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

MARGIN_HELP = ("points a configuration may trail the reference by and still match it: each is read as beats, "
               "matches, trails by more, or not shown to match, from its paired interval (Bonferroni-widened "
               "over the configurations)")


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
    run.add_argument("--gpus", default=None, metavar="LIST",
                     help="GPUs the workers train on, e.g. 0,2 (worker i takes the (i mod n)-th); default: "
                          "with several workers, every GPU there is, one per worker in turn")
    run.add_argument("--project-dir", type=Path, default=None,
                     help="where data, trees, trials and stores go (default: the file's study.project_dir)")
    run.set_defaults(func=run_handler)

    report = sub.add_parser("report", help="best trials or Pareto front, importances, figures")
    report.add_argument("file", type=Path, help="the study file the study was run from")
    report.add_argument("--storage", default=None, help="storage URL if not the default")
    report.add_argument("--project-dir", type=Path, default=None, help="project dir if not the file's")
    report.add_argument("--out", type=Path, default=None, help="figure folder (default: PROJECT/reports/NAME)")
    report.add_argument("--reference", default=None,
                        help="tree the others are paired with in the per-tree table (default: the uniform tree)")
    report.add_argument("--margin", type=float, default=None, metavar="POINTS",
                        help=MARGIN_HELP)
    report.set_defaults(func=report_handler)

    test = sub.add_parser("test", help="after selection on validation, score the chosen trials on the test subjects")
    test.add_argument("file", type=Path, help="the study file the study was run from")
    test.add_argument("--trials", type=int, nargs="+", default=None, metavar="N",
                      help="trial numbers to test (default: the best trial, or the Pareto front)")
    test.add_argument("--all", action="store_true", dest="every",
                      help="test every complete trial (for a per-tree comparison on test)")
    test.add_argument("--workers", type=int, default=1,
                      help="processes that evaluate the final models side by side (a GPU or a share of the cores "
                           "each); the figures are the same")
    test.add_argument("--storage", default=None, help="storage URL if not the default")
    test.add_argument("--project-dir", type=Path, default=None, help="project dir if not the file's")
    test.set_defaults(func=test_handler)

    compare = sub.add_parser("compare", help="pair the configurations of several studies seed by seed "
                                             "(recipes one study cannot hold, e.g. training lengths)")
    compare.add_argument("files", type=Path, nargs="+", metavar="FILE", help="study files, run and tested")
    compare.add_argument("--split", choices=("validation", "test"), default="test",
                         help="which subjects' figures to pair (default: test, after `study test --all`)")
    compare.add_argument("--reference", default=None,
                         help="configuration label or study name to pair with (default: the first study's)")
    compare.add_argument("--margin", type=float, default=None, metavar="POINTS", help=MARGIN_HELP)
    compare.add_argument("--out", type=Path, default=None, metavar="FIG",
                         help="also draw the forest plot (mean and interval per configuration, paired deltas) "
                              "to this PNG; without it nothing is written")
    compare.add_argument("--project-dir", type=Path, default=None,
                         help="project dir (or folder of exported records) holding every study, if not the files'")
    compare.set_defaults(func=compare_handler)
    curve = sub.add_parser("curve", help="validation figures along training, per configuration and seed, and "
                                         "where each stops rising (to choose a training length)")
    curve.add_argument("files", type=Path, nargs="+", metavar="FILE",
                       help="the study file the study was run from; several: their curves side by side (studies on "
                            "one learning-rate schedule, e.g. trees run as separate studies on the same seeds)")
    curve.add_argument("--metric", default="rank1", help="validation metric to follow (default rank1)")
    curve.add_argument("--tolerance", type=float, default=None,
                       help="points a later gain may reach and still count as a plateau (default 1.0)")
    curve.add_argument("--storage", default=None, help="storage URL if not the default (one study only)")
    curve.add_argument("--project-dir", type=Path, default=None, help="project dir if not the file's")
    curve.add_argument("--out", type=Path, default=None,
                       help="figure folder (default: PROJECT/reports/NAME of the first study); the figure is "
                            "learning-curve.png, or learning-curve-studies.png for several studies")
    curve.set_defaults(func=curve_handler)
    replicate = sub.add_parser("replicate", help="retrain the best configurations on fresh seeds: confirm, not "
                               "select; with --all, add seeds to every configuration of a comparison")
    replicate.add_argument("file", type=Path, help="the study file the study was run from")
    chosen = replicate.add_mutually_exclusive_group()
    chosen.add_argument("--top", type=int, default=1, help="how many of the best configurations (default 1)")
    chosen.add_argument("--all", action="store_true",
                        help="every complete configuration (a tree comparison's intervals narrow with more seeds)")
    replicate.add_argument("--seeds", type=int, default=3,
                           help="fresh training seeds per configuration (default 3); seeds already trained are "
                                "read back, so a larger number adds seeds")
    replicate.add_argument("--workers", type=int, default=1,
                           help="processes sharing the seeds on this machine (a GPU or a share of the cores each)")
    replicate.add_argument("--storage", default=None, help="storage URL if not the default")
    replicate.add_argument("--project-dir", type=Path, default=None, help="project dir if not the file's")
    replicate.set_defaults(func=replicate_handler)
    export = sub.add_parser("export", help="copy a study's record (study, split, trees, every seed's evaluations, "
                            "reports) without weights or data, to keep, share or report from elsewhere")
    export.add_argument("file", type=Path, help="the study file the study was run from")
    export.add_argument("dest", type=Path, help="folder to write (may hold other studies' records, not this one's)")
    export.add_argument("--no-figures", action="store_true",
                        help="leave drawings (PNG, SVG) out too; the tables and scores behind them stay")
    export.add_argument("--storage", default=None, help="storage URL if not the default")
    export.add_argument("--project-dir", type=Path, default=None, help="project dir if not the file's")
    export.set_defaults(func=export_handler)


def _check_file(path: Path) -> None:
    from workbench.cli import CLIError

    if not path.is_file():
        raise CLIError(f"{path}: study file not found; the shipped studies are in studies/*.toml")


def run_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study run``."""
    from workbench.cli import EXIT_FAILED, CLIError
    from workbench.config import ConfigError
    from workbench.search import StorageError, run_study
    from workbench.search._devices import parse_gpus
    from workbench.tracking import redact_uri, ui_hint

    _check_file(args.file)
    if args.workers < 1:
        raise CLIError(f"--workers {args.workers}: give 1 or more")
    try:
        gpus = parse_gpus(args.gpus) if args.gpus is not None else None
        summary = run_study(args.file, storage_url=args.storage, n_trials=args.n_trials,
                            workers=args.workers, project_dir=args.project_dir, gpus=gpus)
    except (ConfigError, StorageError) as exc:
        raise CLIError(str(exc)) from exc
    print(f"study {summary.study_name} ({redact_uri(summary.storage_url)}): {summary.complete} complete, "
          f"{summary.pruned} pruned, {summary.failed} failed, {summary.running} running, {summary.waiting} waiting"
          + (f"; {summary.skipped} proposals skipped as repeats of other trials" if summary.skipped else ""))
    for row in summary.best:
        print(f"  best trial {row['number']}: values {row['values']} params {row['params']}")
    if summary.tracking_uri:
        print(f"MLflow: {ui_hint(summary.tracking_uri, summary.experiment_id)}")
    if summary.stopped:
        print(f"workbench: study stopped before its budget: {summary.stopped}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _open(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """The study file's config, its Optuna study (which must exist) and the storage URL."""
    import optuna

    from workbench.cli import CLIError
    from workbench.search import StorageError, choose_storage_url, load_study_config, open_storage

    _check_file(args.file)
    config = load_study_config(args.file, project_dir=args.project_dir)
    url = choose_storage_url(config, config.project_dir, args.storage, 1)
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix) and not Path(url[len(prefix):]).is_file():
            raise CLIError(f"study {config.study.name!r}: no study store at {url[len(prefix):]} (the project's stores "
                           f"live in {config.project_dir}); run `workbench study run {args.file}` first, or pass "
                           "--storage / --project-dir")
    try:
        study = optuna.load_study(study_name=config.study.name, storage=open_storage(url))
    except StorageError as exc:
        raise CLIError(str(exc)) from exc
    except KeyError as exc:
        raise CLIError(f"study {config.study.name!r} not found in {url}; run `workbench study run {args.file}` "
                       "first, or pass --storage") from exc
    return config, study, url


def _check_margin(margin: float | None) -> None:
    from workbench.cli import CLIError

    if margin is not None and not margin > 0:
        raise CLIError(f"--margin {margin}: give a positive number of points")


def compare_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study compare``: read-only, nothing is written but the figure ``--out`` asks for."""
    from workbench.cli import CLIError
    from workbench.search._tree_report import compare_studies, forest_figure

    _check_margin(args.margin)
    if args.out is not None and args.out.suffix.lower() != ".png":
        raise CLIError(f"--out {args.out}: give a .png path for the figure")
    opened = []
    for file in args.files:
        config, study, _ = _open(argparse.Namespace(file=file, project_dir=args.project_dir, storage=None))
        opened.append((config, study))
    try:
        comparison = compare_studies(opened, split=args.split, reference=args.reference, margin=args.margin)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    print(comparison.text().replace("per-tree comparison", "comparison of studies", 1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        print(f"figure: {forest_figure(comparison, args.out)}")
    return 0


def curve_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study curve``: reads the stores, writes only the figure."""
    from workbench.cli import CLIError
    from workbench.search._curves import DEFAULT_TOLERANCE, curves_text, plot_curves, read_curves

    tolerance = DEFAULT_TOLERANCE if args.tolerance is None else args.tolerance
    if tolerance < 0:
        raise CLIError(f"--tolerance {tolerance}: give 0 or more points")
    several = len(args.files) > 1
    if several and args.storage is not None:
        raise CLIError("--storage names one study's store; several studies are read from their project dir")
    if several:  # one schedule for all, checked before any store is opened
        from workbench.search import load_study_config

        for file in args.files:
            _check_file(file)
        configs = [load_study_config(file, project_dir=args.project_dir) for file in args.files]
        for other in configs[1:]:
            if other.train.scheduler.milestones != configs[0].train.scheduler.milestones:
                raise CLIError(f"{other.study.name}: its learning rate drops after "
                               f"{list(other.train.scheduler.milestones)}, {configs[0].study.name}'s after "
                               f"{list(configs[0].train.scheduler.milestones)}; curves side by side need one "
                               "schedule, since each plateau is read before the first drop")
    opened = [_open(argparse.Namespace(file=file, project_dir=args.project_dir, storage=args.storage))[:2]
              for file in args.files]
    first = opened[0][0]
    drops = first.train.scheduler.milestones
    curves = [curve for config, study in opened
              for curve in read_curves(study, config, args.metric, study_label=several)]
    print(curves_text(curves, args.metric, tolerance, drops))
    if curves:
        out = args.out or first.project_dir / "reports" / first.study.name
        name = "learning-curve-studies.png" if several else "learning-curve.png"
        print(f"figure: {plot_curves(curves, out / name, args.metric, tolerance, drops)}")
    return 0


def report_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study report``."""
    from workbench.search import build_report

    _check_margin(args.margin)
    config, study, url = _open(args)
    out = args.out or config.project_dir / "reports" / config.study.name
    report = build_report(study, [o.metric for o in config.objectives], out, config=config, reference=args.reference,
                          margin=args.margin)
    print(report.text())
    print(f"report: {out / 'report.json'}")
    print(f"dashboard: optuna-dashboard {url}")
    return 0


def test_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study test``."""
    from workbench.cli import CLIError
    from workbench.search import prepare_study, score_on_test

    if args.workers < 1:
        raise CLIError(f"--workers {args.workers}: give 1 or more")
    config, study, _ = _open(args)
    try:
        prepared = prepare_study(config, progress=False)
        report = score_on_test(config, prepared, study, numbers=args.trials, every=args.every, workers=args.workers)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from exc
    print(report.text())
    print(f"test figures: {config.project_dir / 'reports' / config.study.name / 'test.json'}")
    return 0


def replicate_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study replicate``."""
    from workbench.cli import CLIError
    from workbench.search import confirm_trials, prepare_study

    if args.top < 1 or args.seeds < 1 or args.workers < 1:
        raise CLIError(f"--top {args.top} --seeds {args.seeds} --workers {args.workers}: give at least one "
                       "configuration, one seed and one worker")
    config, study, url = _open(args)
    try:
        report = confirm_trials(config, prepare_study(config, progress=False), study, top=args.top,
                                seeds=args.seeds, every=args.all, workers=args.workers, study_file=args.file,
                                storage_url=url)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from exc
    print(report.text())
    print(f"figures: {config.project_dir / 'reports' / config.study.name / 'confirm.json'}")
    return 0


def export_handler(args: argparse.Namespace) -> int:
    """Handler of ``workbench study export``: reads the study, writes only under DEST."""
    from workbench.cli import CLIError
    from workbench.search._export import export_study

    config, _, url = _open(args)
    try:
        summary = export_study(config, url, args.dest, figures=not args.no_figures)
    except (FileExistsError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    print(summary.text())
    print(f"report from it: workbench study report {args.file} --project-dir {summary.dest}")
    return 0
