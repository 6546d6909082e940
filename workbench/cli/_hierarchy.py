"""``workbench discover | dendrogram | trees``: find, draw and list body-part hierarchies."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.cli._choices import (
    DESCRIPTORS,
    LINKAGES,
    ROW_METRICS,
    SILHOUETTE_DESCRIPTORS,
    LazyEpilogFormatter,
)

if TYPE_CHECKING:
    from workbench.hierarchy import CutComparison, PartitionTree, TreeSupport

DEFAULT_KS = (2, 3, 4, 6, 8)

def _descriptor_epilog() -> str:
    """The registered descriptors with their one-line summaries, the default marked (read when help is printed)."""
    from workbench.hierarchy import DEFAULT_DESCRIPTOR, descriptor_summaries, list_descriptors

    readable = set(list_descriptors(kind="silhouette"))
    lines = ["descriptors:"]
    for name, summary in descriptor_summaries().items():
        text = (summary.split(": ", 1)[1] if summary.startswith(f"{name}: ") else summary).rstrip(".")
        if name == DEFAULT_DESCRIPTOR:
            text += " (the default)"
        elif name not in readable:
            text += " (reads a trained model's feature maps: --checkpoint)"
        lines.append(f"  {name:<17} {text}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``discover``, ``dendrogram`` and ``trees``."""
    p = subparsers.add_parser(
        "discover",
        help="discover a body-part hierarchy from silhouettes (contiguous agglomerative clustering of rows)",
        description="Stream every sequence of --data into per-row motion descriptors (per subject), cluster the "
        "rows into a tree of contiguous regions, print its cuts and scores and save it as a hierarchy file.",
        epilog=_descriptor_epilog,  # type: ignore[arg-type]
        formatter_class=LazyEpilogFormatter,
    )
    p.add_argument("--data", required=True, type=Path, help="OpenGait pkl tree, packed store, raw "
                   "<id>/<type>/<view> frames or GIFs, or a folder of GIFs (raw input is pretreated on the fly)")
    p.add_argument("--descriptor", choices=DESCRIPTORS, metavar="DESCRIPTOR",
                   help="row descriptor: %(choices)s (see below; default: the one marked there, or "
                   "activation-stats with --checkpoint)")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="a trained model (workbench checkpoint) whose feature maps are described instead of the "
                   "silhouettes; only the subjects it trained on are read")
    p.add_argument("--stage", type=int, default=1,
                   help="with --checkpoint: the convolution stage whose maps are read (1: the first; default 1)")
    p.add_argument("--device", default="auto", help="with --checkpoint: where the model runs: cpu, cuda, cuda:N or auto "
                   "(default auto: CUDA when present)")
    p.add_argument("--linkage", default="ward", choices=LINKAGES, metavar="LINKAGE",
                   help="%(choices)s (default ward)")
    p.add_argument("--metric", default="euclidean", choices=ROW_METRICS, metavar="METRIC",
                   help="row distance: %(choices)s (default euclidean; ward needs euclidean)")
    p.add_argument("--no-standardize", action="store_true", help="cluster raw features (default: as the descriptor asks; z-score each for all but row-identity)")
    p.add_argument("--rows", type=int, default=64, help="descriptor rows (the data is area-resampled; default 64)")
    p.add_argument("--bootstrap", type=int, default=100, metavar="N",
                   help="subject resamples for the stability of the cuts and the support of every node and "
                   "boundary (0 skips both; default 100)")
    p.add_argument("--tolerance", type=int, default=1, metavar="ROWS",
                   help="rows an interval end or boundary may move and still count as 'near' support (default 1)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (and the draw of --max-sequences)")
    p.add_argument("--max-sequences", type=int, default=None, metavar="N",
                   help="describe at most N sequences, drawn at random with every subject kept (default: every one)")
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), help="cuts to print and record")
    p.add_argument("--out", required=True, type=Path, help="hierarchy file to write, e.g. hierarchies/mine.json")
    p.set_defaults(func=discover)

    p = subparsers.add_parser(
        "dendrogram",
        help="draw a hierarchy's dendrogram with its support, the data's mean silhouette and row evidence, or "
        "two trees side by side (--compare)",
        description="Draw TREE's dendrogram (merges coloured by bootstrap support when `workbench discover` "
        "recorded it), one panel per cut, and with --data the mean silhouette, the row-by-row distance matrix "
        "of the tree's descriptor and each descriptor block's share of every row step. With --compare, draw "
        "two trees facing each other over the same silhouette and print where their cuts agree and differ. "
        "The figure is written as PNG and SVG.",
    )
    p.add_argument("tree", help="preset name, name in ./hierarchies, or path to a hierarchy file")
    p.add_argument("--data", type=Path, help="data to average into the silhouette panel (omit: tree alone)")
    p.add_argument("--cuts", type=int, nargs="+", help="region counts to colour (default: the paper's 2 4)")
    p.add_argument("--compare", metavar="TREE_B",
                   help="second tree (same rows) to draw beside TREE; prints boundary distances and ARI per cut")
    p.add_argument("--no-evidence", action="store_true",
                   help="with --data, draw the mean silhouette only (skips describing the data's rows)")
    p.add_argument("--descriptor", choices=SILHOUETTE_DESCRIPTORS, metavar="DESCRIPTOR",
                   help="descriptor of the evidence panels: %(choices)s (default: the tree's own, else discover's)")
    p.add_argument("--out", required=True, type=Path, help="figure file (.png or .svg; the other is written too)")
    p.set_defaults(func=dendrogram)

    p = subparsers.add_parser("trees", help="list preset and discovered hierarchies with their ids and cuts")
    p.add_argument("--dir", type=Path, default=Path("hierarchies"), help="folder of discovered trees")
    p.set_defaults(func=trees)


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def discover(args: argparse.Namespace) -> int:
    """Handler of ``workbench discover``: ``discover_tree`` does the work, this prints and saves."""
    from workbench.cli import CLIError
    from workbench.hierarchy import DEFAULT_DESCRIPTOR, discover_tree

    args.descriptor = args.descriptor or ("activation-stats" if args.checkpoint else DEFAULT_DESCRIPTOR)
    if args.out.suffix != ".json":
        raise CLIError(f"--out {args.out}: a hierarchy file must end in .json, e.g. hierarchies/mine.json")
    if args.max_sequences is not None and args.max_sequences < 1:
        raise CLIError(f"--max-sequences {args.max_sequences}: give at least 1 (or leave it out to read every one)")
    reading: dict[str, Any] = {}
    if args.checkpoint is not None:
        reading = _model_reading(args)
    try:
        result = discover_tree(
            args.data, descriptor=args.descriptor, linkage=args.linkage, metric=args.metric,
            standardize=False if args.no_standardize else None, rows=args.rows, seed=args.seed, name=args.out.stem, ks=args.ks,
            bootstrap=args.bootstrap, tolerance=args.tolerance, max_sequences=args.max_sequences, **reading,
        )
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    tree, estimator, stats = result.tree, result.estimator, result.stats
    print(f"data: {result.table.name} ({result.table.kind}): {stats.n_sequences} sequences, {stats.n_subjects} "
          "subjects" + (f", {stats.n_skipped} skipped (too short)" if stats.n_skipped else ""))
    print(f"descriptor: {args.descriptor} [{stats.n_rows} rows x {stats.n_features} features]; "
          f"linkage {args.linkage}, metric {args.metric}")
    for k in sorted({k for k in args.ks if 1 <= k <= tree.n_rows}):
        print(f"  k={k}: {tree.cut(k)}")
    print(f"cophenetic correlation: {_fmt(estimator.cophenetic_)}")
    if args.bootstrap > 0 and stats.n_subjects < 2:
        print(f"stability: skipped: needs at least 2 subjects, the data has {stats.n_subjects}")
    for s in result.stability:
        print(f"stability k={s.k}: ARI {_fmt(s.ari_mean)} ± {_fmt(s.ari_std)}, "
              f"boundary jitter {_fmt(s.jitter_mean)} ± {_fmt(s.jitter_std)} rows ({s.n_resamples} resamples)")
    if result.support is not None:
        _print_support(tree, result.support, args.ks)
    if result.ground_truth is not None:
        found = result.ground_truth["discovered"]
        print(f"ground truth ({found.k} parts, boundaries {found.true_boundaries}):")
        for label, score in result.ground_truth.items():
            print(f"  {label:<10} cut {score.cut}: row error {score.row_error:.2f} "
                  f"(true->cut {score.true_to_cut:.2f}, cut->true {score.cut_to_true:.2f}), ARI {_fmt(score.ari)}")
    tree.save(args.out)
    print(f"wrote {args.out} (tree_id {tree.tree_id})")
    return 0


def _model_reading(args: argparse.Namespace) -> dict[str, Any]:
    """``discover_tree`` arguments that describe ``--checkpoint``'s feature maps of the subjects it trained on."""
    from workbench.cli import CLIError
    from workbench.models import feature_map_reader
    from workbench.training import CheckpointError, load_for_inference

    if not args.checkpoint.is_file():
        raise CLIError(f"--checkpoint {args.checkpoint}: no such file")
    try:
        model, config = load_for_inference(args.checkpoint, args.device)
        transform = feature_map_reader(model, args.stage, args.device)
    except (CheckpointError, ValueError, NotImplementedError, TypeError) as exc:
        raise CLIError(f"--checkpoint {args.checkpoint}: {exc}") from exc
    regions = transform.regions
    if len(regions) > 1:
        print(f"warning: stage {args.stage}'s maps are computed region by region of the model's own split {regions} "
              "(convolutions do not cross them), so the tree will echo those boundaries; stage 1 (the stem) "
              "runs over the whole height", file=sys.stderr)
    # The model's training subjects only: its split when the file is still there, else the data's own.
    recorded = Path(config.data.partition) if config.data.partition else None
    partition = recorded if recorded is not None and recorded.is_file() else None
    splittable = partition is not None or (args.data / "partition.json").is_file()
    return {"transform": transform, "subset": "train" if splittable else None, "partition": partition,
            "source": {"checkpoint": str(args.checkpoint.resolve()), "stage": args.stage,
                       "model": config.model.name, "map_regions": regions}}


def _print_support(tree: PartitionTree, support: TreeSupport, ks: list[int]) -> None:
    """Boundary support of the printed cuts, then node support of their regions, split order."""
    tol = f"±{support.tolerance} row{'s' if support.tolerance != 1 else ''}"
    print(f"support over {support.n_resamples} subject resamples (same row; within {tol} in brackets):")
    shown: list[tuple[int, int]] = []
    for k in sorted({k for k in ks if 2 <= k <= tree.n_rows}):
        items = support.cut(k)
        if items:
            print(f"  k={k} boundaries: " + ", ".join(f"{b.row}: {b.support:.2f} ({b.near:.2f})" for b in items))
            shown += [n for n in tree.cut_regions(k) if n in support.nodes]
    for node in tree.internal_nodes:
        if node in shown:
            same, near = support.nodes[node]
            print(f"  node [{node[0]:>2}, {node[1]:>2}) {node[1] - node[0]:>2} rows: {same:.2f} ({near:.2f})")


def _print_comparison(rows: list[CutComparison]) -> None:
    for c in rows:
        print(f"k={c.k}: A {c.cut_a}  B {c.cut_b}  ARI {c.ari:.3f}")
        if c.k < 2:
            continue
        shared = ", ".join(str(a) if a == b else f"{a}~{b}" for a, b in c.shared) or "none"
        print(f"  shared boundaries (within {c.tolerance} row{'s' if c.tolerance != 1 else ''}): {shared}")
        only_a, only_b = ", ".join(map(str, c.only_a)) or "none", ", ".join(map(str, c.only_b)) or "none"
        print(f"  only in A: {only_a}; only in B: {only_b}")
        print(f"  mean distance to the nearest boundary: A->B {c.a_to_b:.2f} rows, B->A {c.b_to_a:.2f} rows")


def dendrogram(args: argparse.Namespace) -> int:
    """Handler of ``workbench dendrogram``."""
    from workbench.cli import CLIError
    from workbench.hierarchy import (
        PAPER_CUTS,
        compare_cuts,
        load_tree,
        plot_dendrogram,
        plot_tree_comparison,
        silhouette_and_evidence,
    )

    if args.out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CLIError(f"--out {args.out}: choose a .png, .svg or .pdf file")
    cuts = list(args.cuts or PAPER_CUTS)
    try:
        tree = load_tree(args.tree)
        other = load_tree(args.compare) if args.compare is not None else None
        rows = compare_cuts(tree, other, cuts) if other is not None else None  # fail before reading data
        image, evidence = None, None
        if args.data is not None:
            with_evidence = other is None and not args.no_evidence
            image, evidence = silhouette_and_evidence(args.data, tree, evidence=with_evidence,
                                                      descriptor=args.descriptor)
        if other is not None and rows is not None:
            out = plot_tree_comparison(tree, other, args.out, image, cuts=cuts)
            print(f"A: {tree.name or tree.tree_id} ({tree.tree_id})  B: {other.name or other.tree_id} "
                  f"({other.tree_id})")
            _print_comparison(rows)
        else:
            out = plot_dendrogram(tree, args.out, image, cuts=cuts, evidence=evidence)
    except (ValueError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from exc
    written = dict.fromkeys([out, out.with_suffix(".png"), out.with_suffix(".svg")])
    print("wrote " + ", ".join(str(p) for p in written))
    return 0


def trees(args: argparse.Namespace) -> int:
    """Handler of ``workbench trees``."""
    from workbench.cli import CLIError
    from workbench.hierarchy import list_trees

    try:
        infos = list_trees(args.dir)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    for info in infos:
        cuts = " -> ".join(str(c) for c in info.cuts) or "-"
        print(f"{info.name:<22} {info.tree_id}  {info.n_rows:>3} rows  {info.source}")
        print(f"    cuts: {cuts}")
        if info.description:
            print(f"    {info.description}")
    return 0
