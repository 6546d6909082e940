"""``workbench discover | dendrogram | trees``: find, draw and list body-part hierarchies."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_KS = (2, 3, 4, 6, 8)

DEFAULT_DESCRIPTOR = "row-articulation"  # workbench.hierarchy.DEFAULT_DESCRIPTOR, kept here so --help stays light

_DESCRIPTOR_HELP = {
    "row-articulation": "row-coherence plus the coherence of each row's edge tilt, equal weight per block (rows "
    "of one rigid segment lean together, so joints show even where the width does not change; the default)",
    "row-coherence": "correlation of each row's temporal signals with every other row's (rows of one rigid "
    "part move together)",
    "row-spectrum": "magnitude spectrum bands of each row's occupancy, edges, centroid and change (phase-free)",
    "row-stats": "mean, spread, range and speed of each row's occupancy, edges, centroid and change",
    "activation-stats": "per-row channel statistics of model activations [c, s, h, w] (needs an adapter; "
    "not readable from a data folder)",
}
_SILHOUETTE_DESCRIPTORS = [name for name in _DESCRIPTOR_HELP if name != "activation-stats"]


def _descriptor_epilog() -> str:
    lines = ["descriptors:"]
    lines += [f"  {name:<17} {text}" for name, text in _DESCRIPTOR_HELP.items()]
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``discover``, ``dendrogram`` and ``trees``."""
    p = subparsers.add_parser(
        "discover",
        help="discover a body-part hierarchy from silhouettes (contiguous agglomerative clustering of rows)",
        description="Stream every sequence of --data into per-row motion descriptors (per subject), cluster the "
        "rows into a tree of contiguous regions, print its cuts and scores and save it as a hierarchy file.",
        epilog=_descriptor_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, type=Path, help="OpenGait pkl tree, packed store, raw "
                   "<id>/<type>/<view> frames or GIFs, or a folder of GIFs (raw input is pretreated on the fly)")
    p.add_argument("--descriptor", default=DEFAULT_DESCRIPTOR, choices=_SILHOUETTE_DESCRIPTORS,
                   help=f"row descriptor (see below; default {DEFAULT_DESCRIPTOR})")
    p.add_argument("--linkage", default="ward", choices=["ward", "average", "complete", "single"])
    p.add_argument("--metric", default="euclidean",
                   choices=["euclidean", "cosine", "correlation", "cityblock", "sqeuclidean", "chebyshev"],
                   help="row distance (ward needs euclidean)")
    p.add_argument("--no-standardize", action="store_true", help="cluster raw features (default: z-score each)")
    p.add_argument("--rows", type=int, default=64, help="descriptor rows (the data is area-resampled; default 64)")
    p.add_argument("--bootstrap", type=int, default=20, metavar="N",
                   help="subject resamples for the stability score (0 skips it; default 20)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--ks", type=int, nargs="+", default=list(DEFAULT_KS), help="cuts to print and record")
    p.add_argument("--out", required=True, type=Path, help="hierarchy file to write, e.g. hierarchies/mine.json")
    p.set_defaults(func=discover)

    p = subparsers.add_parser("dendrogram", help="draw a hierarchy's dendrogram beside the data's mean silhouette")
    p.add_argument("tree", help="preset name, name in ./hierarchies, or path to a hierarchy file")
    p.add_argument("--data", type=Path, help="data to average into the silhouette panel (omit: tree alone)")
    p.add_argument("--cuts", type=int, nargs="+", default=[2, 4], help="region counts to colour (default 2 4)")
    p.add_argument("--out", required=True, type=Path, help="figure file (.png or .svg)")
    p.set_defaults(func=dendrogram)

    p = subparsers.add_parser("trees", help="list preset and discovered hierarchies with their ids and cuts")
    p.add_argument("--dir", type=Path, default=Path("hierarchies"), help="folder of discovered trees")
    p.set_defaults(func=trees)


def _fmt(value: float) -> str:
    return f"{value:.3f}"


def discover(args: argparse.Namespace) -> int:
    """Handler of ``workbench discover``: ``discover_tree`` does the work, this prints and saves."""
    from workbench.cli import CLIError
    from workbench.hierarchy import discover_tree

    if args.out.suffix != ".json":
        raise CLIError(f"--out {args.out}: a hierarchy file must end in .json, e.g. hierarchies/mine.json")
    try:
        result = discover_tree(
            args.data, descriptor=args.descriptor, linkage=args.linkage, metric=args.metric,
            standardize=not args.no_standardize, rows=args.rows, seed=args.seed, name=args.out.stem, ks=args.ks,
            bootstrap=args.bootstrap,
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
    if result.ground_truth is not None:
        found = result.ground_truth["discovered"]
        print(f"ground truth ({found.k} parts, boundaries {found.true_boundaries}):")
        for label, score in result.ground_truth.items():
            print(f"  {label:<10} cut {score.cut}: row error {score.row_error:.2f} "
                  f"(true->cut {score.true_to_cut:.2f}, cut->true {score.cut_to_true:.2f}), ARI {_fmt(score.ari)}")
    tree.save(args.out)
    print(f"wrote {args.out} (tree_id {tree.tree_id})")
    return 0


def dendrogram(args: argparse.Namespace) -> int:
    """Handler of ``workbench dendrogram``."""
    from tqdm import tqdm

    from workbench.cli import CLIError
    from workbench.hierarchy import load_tree, mean_silhouette, open_sequences, plot_dendrogram

    if args.out.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise CLIError(f"--out {args.out}: choose a .png, .svg or .pdf file")
    try:
        tree = load_tree(args.tree)
        image = None
        if args.data is not None:
            table = open_sequences(args.data)
            image = mean_silhouette(table.load(i) for i in tqdm(range(len(table)), desc="averaging", leave=False))
        out = plot_dendrogram(tree, args.out, image, cuts=args.cuts)
    except ValueError as exc:
        raise CLIError(str(exc)) from exc
    print(f"wrote {out}")
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
