"""``workbench demo``: the whole pipeline on rendered synthetic data, on the CPU, in minutes."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEMO_STUDY = "quick-synthetic.toml"
TREES_STUDY = "demo-trees-synthetic.toml"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="render synthetic gait data, discover trees, compare trees on shared seeds, search, test, report"
    )
    parser.add_argument("--study", type=Path, default=None,
                        help=f"search study file (default: studies/{DEMO_STUDY} of this checkout)")
    parser.add_argument("--trees-study", type=Path, default=None,
                        help=f"tree-comparison study file (default: studies/{TREES_STUDY} of this checkout)")
    parser.add_argument("--project-dir", type=Path, default=Path("workbench-home"),
                        help="where data, trees, trials, reports and the SQLite stores go")
    parser.add_argument("--n-trials", type=int, default=None, help="override the search study's trial budget")
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
    """Handler of ``workbench demo``: the tree comparison (validation, then test), then the search."""
    from workbench.search import build_report, load_study_config, open_study, run_study, score_on_test
    from workbench.search._prepare import PreparedStudy
    from workbench.tracking import ui_hint

    trees_file = args.trees_study or find_study(TREES_STUDY)
    search_file = args.study or find_study()
    started = time.time()
    project = args.project_dir.resolve()
    figures: list[Path] = []

    def draw_dendrograms(prepared: PreparedStudy) -> None:
        from workbench.hierarchy import PAPER_CUTS, load_tree
        from workbench.hierarchy._plot import mean_silhouette, plot_dendrogram
        from workbench.hierarchy._sources import open_sequences

        # The silhouette behind the trees is drawn from the subjects discovery read: the training ones.
        table = open_sequences(prepared.data_path, subset="train", partition=prepared.split_path)
        step = max(1, len(table) // 200)
        image = mean_silhouette(table.load(i) for i in range(0, len(table), step))
        out_dir = project / "dendrograms"
        out_dir.mkdir(parents=True, exist_ok=True)
        for path in prepared.discovered:
            figures.append(plot_dendrogram(load_tree(path), out_dir / f"{path.stem}.png", image, cuts=PAPER_CUTS))
        print(f"data: {prepared.data_path}")
        print(f"split: {prepared.split_path} (training and validation subjects; test subjects stay unread)")
        print("trees: " + ", ".join(f"{c.name} {c.tree.cuts(PAPER_CUTS)}" for c in prepared.candidates))

    print(f"demo 1/2: tree comparison {trees_file}, project {project}")
    trees = run_study(trees_file, project_dir=project, on_prepared=draw_dendrograms)
    trees_config = load_study_config(trees_file, project_dir=project)
    trees_study = open_study(trees_config, trees.storage_url)
    from workbench.search import prepare_study

    tested = score_on_test(trees_config, prepare_study(trees_config, progress=False), trees_study, every=True)
    trees_dir = project / "reports" / trees_config.study.name
    trees_report = build_report(trees_study, [o.metric for o in trees_config.objectives], trees_dir,
                                config=trees_config)

    print(f"demo 2/2: search {search_file}")
    summary = run_study(search_file, n_trials=args.n_trials, project_dir=project)
    config = load_study_config(search_file, project_dir=project)
    study = open_study(config, summary.storage_url)
    best = score_on_test(config, prepare_study(config, progress=False), study)
    report_dir = project / "reports" / config.study.name
    report = build_report(study, [o.metric for o in config.objectives], report_dir, config=config)
    print()
    for comparison in trees_report.trees:
        print(comparison.text())
        print()
    print(f"search: {report.text()}")
    print()
    print(best.text())
    print()
    minutes = (time.time() - started) / 60
    mlflow_db = project / "mlflow.db"
    print(f"finished in {minutes:.1f} min: tree comparison {trees.complete} configurations x "
          f"{trees_config.budget.seeds} seeds ({len(tested.trials)} tested); search {summary.complete} complete, "
          f"{summary.pruned} pruned, {summary.failed} failed trials")
    print(f"dendrograms:   {', '.join(str(p) for p in figures) or '(none discovered)'}")
    print(f"reports:       {trees_dir / 'report.json'}, {report_dir / 'report.json'}")
    for url in dict.fromkeys([trees.storage_url, summary.storage_url]):
        print(f"Optuna store:  {url}   (optuna-dashboard {url})")
    print(f"MLflow store:  sqlite:///{mlflow_db}")
    print(f"open the UI:   {ui_hint(f'sqlite:///{mlflow_db}', trees.experiment_id)}")
    print(f"compare:       workbench compare --tracking-uri sqlite:///{mlflow_db} --experiment "
          f"{trees_config.experiment_name} --by tree")
    return 0
