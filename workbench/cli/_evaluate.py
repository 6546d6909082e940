"""``workbench evaluate`` (a trained checkpoint under a protocol) and ``workbench baseline`` (GEI + PCA)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from workbench.cli._choices import AMP, DISTANCES, PROTOCOLS
from workbench.cli._import import TREE_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` and ``baseline`` commands."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate a trained checkpoint under a protocol (CASIA-B, OUMVLP, GREW, Gait3D, synthetic)",
        description="Extract inference embeddings of the protocol's test sequences (every frame, many "
        "sequences per batch) and score them. casia-b/synthetic/oumvlp: rank-1 per probe view x gallery "
        "view, identical views excluded; grew: rank-1/5/10/20 and a submission CSV of the top-20 gallery "
        "ids per probe; gait3d: rank-1/5/10, mAP, mINP with PROBE_SET from the partition file. Every figure "
        "comes with a 95 % interval from a bootstrap over the test subjects (gallery fixed), printed next to "
        "it and stored as <figure>_ci_low/<figure>_ci_high. With --out, writes summary.json, results.txt, "
        "subject_scores.npz (per-subject statistics, read back by workbench.evaluation.load_result) and the "
        "protocol's heat map (rank1_views.png) or CSV.",
    )
    p.add_argument("checkpoint", type=Path,
                   help="checkpoint written by `workbench train` or `workbench import`, or a public HSTL (OpenGait) one")
    p.add_argument("--data", type=Path, required=True, help="dataset root (OpenGait layout) or packed store")
    _common(p, default_protocol="synthetic")
    p.add_argument("--tree", help=f"public checkpoints only: {TREE_HELP}")
    p.add_argument("--batch-size", type=int, default=8, help="sequences per inference batch (default 8)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: CUDA if available)")
    p.add_argument("--frames", type=int, help="use only the first N frames of each sequence (default: all)")
    p.add_argument("--amp", choices=AMP, default="off", metavar="AMP",
                   help="%(choices)s: run the model under autocast: bf16 (CUDA, or a CPU with bf16 units) or fp16 (CUDA); "
                   "embeddings stay float32 (default off)")
    p.add_argument("--save-embeddings", action="store_true", help="also write embeddings.npz into --out")
    p.set_defaults(func=run_evaluate)

    b = subparsers.add_parser(
        "baseline",
        help="the non-deep baseline: gait energy image + PCA + nearest neighbour",
        description="Average each sequence's cut silhouettes into a gait energy image, fit PCA on the "
        "TRAIN_SET sequences, project the test sequences and score them under the protocol (1-NN by its "
        "distance). Prints rank-1 per condition (NM/BG/CL for casia-b and synthetic).",
    )
    b.add_argument("--data", type=Path, required=True, help="dataset root (OpenGait layout) or packed store")
    _common(b, default_protocol="synthetic")
    b.add_argument("--components", type=int, default=64, help="PCA components (default 64)")
    b.set_defaults(func=run_baseline)


def _common(parser: argparse.ArgumentParser, default_protocol: str) -> None:
    parser.add_argument("--protocol", choices=PROTOCOLS, default=default_protocol, metavar="PROTOCOL",
                        help=f"evaluation protocol: %(choices)s (default {default_protocol})")
    parser.add_argument("--metric", choices=DISTANCES, default="euclidean", metavar="METRIC",
                        help="per-part distance: %(choices)s (default euclidean)")
    parser.add_argument("--partition", type=Path, help="partition JSON (default: DATA/partition.json)")
    parser.add_argument("--out", type=Path,
                        help="directory for summary.json, results.txt, subject_scores.npz and figures/CSV")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bars")


def _check_data(path: Path) -> None:
    from workbench.cli import CLIError

    if not path.exists():
        raise CLIError(f"--data {path}: not found; pass a dataset root (ROOT/<id>/<type>/<view>/*.pkl) "
                       "or a packed store, e.g. one written by `workbench data synth`")


def _check_out(out: Path | None, save_embeddings: bool) -> None:
    """Refuse, before any inference, an output that cannot be written or would replace an evaluation."""
    from workbench.cli import CLIError

    if out is None:
        if save_embeddings:
            raise CLIError("--save-embeddings needs --out DIR")
        return
    if out.exists() and not out.is_dir():
        raise CLIError(f"--out {out}: is a file; --out names a folder for summary.json, results.txt and figures")
    if (out / "summary.json").exists():
        raise CLIError(f"--out {out}: already holds an evaluation (summary.json); choose another folder or move it")


def _save(result: Any, out: Path | None, extra: dict[str, Any]) -> None:
    if out is None:
        return
    paths = result.save(out)
    summary_path = out / "summary.json"
    payload = json.loads(summary_path.read_text())
    payload.update(extra)
    summary_path.write_text(json.dumps(payload, indent=2) + "\n")
    for path in paths:
        print(f"wrote {path}")


def run_evaluate(args: argparse.Namespace) -> int:
    """Handler of ``workbench evaluate``."""
    from workbench.cli import CLIError, checkpoint_error
    from workbench.cli._import import reported_guesses, tree_option
    from workbench.data import DataError
    from workbench.evaluation import evaluate_model
    from workbench.models import autocast, resolve_amp, resolve_device
    from workbench.training import CheckpointError, load_for_inference

    if args.batch_size < 1:
        raise CLIError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.frames is not None and args.frames < 1:
        raise CLIError(f"--frames must be >= 1, got {args.frames}")
    if not args.checkpoint.is_file():
        raise CLIError(f"{args.checkpoint}: checkpoint not found; pass a .pt file written by `workbench train` or "
                       "`workbench import`, or a public HSTL checkpoint")
    _check_data(args.data)
    _check_out(args.out, args.save_embeddings)
    tree = tree_option(args.tree)
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        raise CLIError(f"--device {args.device}: {exc}") from exc
    try:
        autocast(device, args.amp)
    except (ValueError, RuntimeError) as exc:
        raise CLIError(f"--amp {args.amp} --device {device}: {exc}") from exc
    try:
        with reported_guesses():
            model, config = load_for_inference(args.checkpoint, device, tree=tree)
    except CheckpointError as exc:
        raise checkpoint_error(args.checkpoint, exc) from exc
    try:
        result, embeddings = evaluate_model(
            model, args.data, args.protocol, partition=args.partition, metric=args.metric,
            batch_size=args.batch_size, device=device, frames=args.frames, progress=not args.no_progress,
            amp=args.amp,
        )
    except (DataError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    print(result.table())
    extra = {"checkpoint": str(args.checkpoint), "data": str(args.data), "model": config.model.name,
             "sequences": len(embeddings), "amp": resolve_amp(args.amp, device)}
    _save(result, args.out, extra)
    if args.save_embeddings and args.out is not None:
        print(f"wrote {embeddings.save(args.out / 'embeddings.npz')}")
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    """Handler of ``workbench baseline``."""
    from workbench.cli import CLIError
    from workbench.data import DataError
    from workbench.evaluation import gei_baseline

    if args.components < 1:
        raise CLIError(f"--components must be >= 1, got {args.components}")
    _check_data(args.data)
    try:
        baseline = gei_baseline(args.data, args.protocol, args.components, metric=args.metric,
                                partition=args.partition, progress=not args.no_progress)
    except (DataError, ValueError) as exc:
        raise CLIError(str(exc)) from exc
    print(baseline.table())
    extra = {"baseline": "gei-pca", "components": baseline.n_components,
             "explained_variance": baseline.explained_variance, "data": str(args.data)}
    _save(baseline.result, args.out, extra)
    return 0
