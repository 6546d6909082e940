"""``workbench demo``: the whole pipeline on rendered synthetic data, on the CPU, in minutes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEMO_STUDY = "quick-synthetic.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="render synthetic gait data, discover trees, run the quick study, log to MLflow, report"
    )
    parser.add_argument("--study", type=Path, default=None,
                        help=f"study file (default: studies/{DEMO_STUDY} of this checkout)")
    parser.add_argument("--project-dir", type=Path, default=Path("workbench-home"),
                        help="where data, trees, trials, reports and the SQLite stores go")
    parser.add_argument("--n-trials", type=int, default=None, help="override the study's trial budget")
    parser.set_defaults(func=demo)


def find_study(name: str = DEMO_STUDY) -> Path:
    """The shipped study file: ``studies/NAME`` in the working directory, else beside the package."""
    import workbench
    from workbench.cli import CLIError

    for root in (Path.cwd(), Path(workbench.__file__).resolve().parents[1]):
        path = root / "studies" / name
        if path.is_file():
            return path
    raise CLIError(f"studies/{name} not found; run the demo from the repository root or pass --study FILE")


def demo(args: argparse.Namespace) -> int:
    """Handler of ``workbench demo``."""
    from workbench.hierarchy import load_tree
    from workbench.hierarchy._plot import mean_silhouette, plot_dendrogram
    from workbench.hierarchy._sources import open_sequences
    from workbench.search import build_report, load_study_config, open_study, run_study
    from workbench.search._prepare import PreparedStudy

    study_file = args.study or find_study()
    started = time.time()
    project = args.project_dir.resolve()
    figures: list[Path] = []

    def draw_dendrograms(prepared: PreparedStudy) -> None:
        table = open_sequences(prepared.data_path)
        step = max(1, len(table) // 200)
        image = mean_silhouette(table.load(i) for i in range(0, len(table), step))
        out_dir = project / "figures"
        for path in prepared.discovered:
            figures.append(plot_dendrogram(load_tree(path), out_dir / f"{path.stem}.png", image, cuts=[2, 4]))
        print(f"data: {prepared.data_path}")
        print("trees: " + ", ".join(f"{c.name} {c.tree.cuts([2, 4])}" for c in prepared.candidates))

    print(f"demo: study {study_file}, project {project}")
    summary = run_study(study_file, n_trials=args.n_trials, project_dir=project, on_prepared=draw_dendrograms)
    config = load_study_config(study_file, project_dir=project)
    study = open_study(config, summary.storage_url)
    report_dir = project / "reports" / config.study.name
    report = build_report(study, [o.metric for o in config.objectives], report_dir, config=config)
    print()
    print(report.text())
    print()
    minutes = (time.time() - started) / 60
    mlflow_db = project / "mlflow.db"
    print(f"finished in {minutes:.1f} min: {summary.complete} complete, {summary.pruned} pruned, "
          f"{summary.failed} failed trials")
    print(f"dendrograms:   {', '.join(str(p) for p in figures) or '(none discovered)'}")
    print(f"report:        {report_dir / 'report.json'}")
    print(f"Optuna store:  {summary.storage_url}   (optuna-dashboard {summary.storage_url})")
    print(f"MLflow store:  sqlite:///{mlflow_db}")
    print(f"open the UI:   mlflow ui --backend-store-uri sqlite:///{mlflow_db} --port 5000")
    print(f"compare:       workbench compare --tracking-uri sqlite:///{mlflow_db} --experiment "
          f"{config.experiment_name}")
    return 0
