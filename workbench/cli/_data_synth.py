"""``workbench data synth``: render the synthetic walker dataset in OpenGait's layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from workbench.cli import CLIError


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` under ``workbench data``."""
    parser = data_subparsers.add_parser(
        "synth",
        help="render a synthetic gait dataset (OpenGait layout, partition and ground truth)",
        description="Render an articulated 3D walker as aligned silhouettes into OUT/<id>/<type>/<view>/<view>.pkl, "
        "plus OUT/partition.json (split by subject) and OUT/ground_truth.json (rows where body parts meet). "
        "The same --seed gives the same bytes, whatever --workers.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory (created; must be empty)")
    parser.add_argument(
        "--preset", choices=("default", "tiny"), default="default",
        help="starting point: default (50 subjects, 10 types, 11 views, 60-90 frames) or tiny (4 x 4 x 3, 12-16 frames)",
    )  # fmt: skip
    parser.add_argument("--subjects", type=int, help="number of subjects (ids 001, 002, ...)")
    parser.add_argument(
        "--views", nargs="+", metavar="DEG",
        help="view angles in degrees, 0..180 (e.g. --views 0 90 180 or --views 000,090); default CASIA-B's 11",
    )  # fmt: skip
    parser.add_argument(
        "--types", nargs="+", metavar="TYPE",
        help="sequence types nm-NN / bg-NN / cl-NN (e.g. --types nm-01 nm-02 bg-01); default CASIA-B's 10",
    )  # fmt: skip
    parser.add_argument("--frames", metavar="MIN-MAX", help="frames per sequence, a range like 60-90 or one number")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--size", type=int, help="frame size: 64 (default) or 128")
    parser.add_argument("--noise", type=float, help="segmentation noise and dropped frames, 0 = off, 1 = default")
    parser.add_argument("--jitter", type=float, help="per-sequence body and gait variation, 0 = off, 1 = default")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    parser.add_argument("--overwrite", action="store_true", help="replace a synthetic dataset already in --out")
    parser.set_defaults(func=_synth)


def _parse_views(values: list[str]) -> tuple[int, ...]:
    views = []
    for item in (part for value in values for part in value.split(",") if part.strip()):
        try:
            views.append(int(item))
        except ValueError:
            raise CLIError(f"--views: {item!r} is not a whole number of degrees (0..180)") from None
    return tuple(views)


def _parse_frames(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    try:
        frames = (int(low), int(high)) if sep else (int(low), int(low))
    except ValueError:
        raise CLIError(f"--frames {text!r}: expected MIN-MAX like 60-90, or one number") from None
    return frames


def _synth(args: argparse.Namespace) -> int:
    from workbench.data.synth import SynthConfig, render_dataset

    overrides: dict[str, Any] = {}
    for name in ("subjects", "seed", "size", "noise", "jitter"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.views is not None:
        overrides["views"] = _parse_views(args.views)
    if args.types is not None:
        overrides["types"] = tuple(t for value in args.types for t in value.split(",") if t.strip())
    if args.frames is not None:
        overrides["frames"] = _parse_frames(args.frames)
    if args.workers < 1:
        raise CLIError(f"--workers {args.workers}: use at least 1")
    try:
        config = SynthConfig.tiny(**overrides) if args.preset == "tiny" else SynthConfig(**overrides)
    except ValueError as exc:
        raise CLIError(f"--{exc}") from None

    started = time.perf_counter()
    try:
        summary = render_dataset(args.out, config, workers=args.workers, progress=True, overwrite=args.overwrite)
    except FileExistsError as exc:
        raise CLIError(str(exc)) from None
    seconds = time.perf_counter() - started
    print(f"wrote {summary.sequences} sequences, {summary.frames} frames ({config.size}x{config.size}) "
          f"of {config.subjects} subjects in {seconds:.1f} s")  # fmt: skip
    print(f"dataset: {summary.root}")
    print(f"partition: {summary.root / 'partition.json'} ({len(summary.train_ids)} train, {len(summary.test_ids)} test)")
    print(f"ground truth: {summary.root / 'ground_truth.json'}")
    return 0
