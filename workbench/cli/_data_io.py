"""``workbench data pretreat`` and ``workbench data pack``."""

from __future__ import annotations

import argparse
from pathlib import Path

from workbench.cli import CLIError


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``pretreat`` and ``pack`` under ``workbench data``."""
    pretreat = data_subparsers.add_parser(
        "pretreat",
        help="align raw silhouettes (PNG frames or GIFs) into OpenGait pkls",
        description="Align raw silhouettes into OpenGait's layout DST/<id>/<type>/<view>/<view>.pkl. "
        "Accepted input: SRC/<id>/<type>/<view>/*.png (frames in file-name order), "
        "SRC/<id>/<type>/<view>/<one>.gif, or SRC/<id>/<type>/<view>.gif.",
    )
    pretreat.add_argument("src", type=Path, help="raw data root")
    pretreat.add_argument("dst", type=Path, help="output root (created if missing)")
    pretreat.add_argument("--size", type=int, choices=(64, 128), default=64, help="output frame size (default 64)")
    pretreat.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    pretreat.set_defaults(func=_pretreat)

    pack = data_subparsers.add_parser(
        "pack",
        help="pack a dataset into one memory-mapped store for fast training",
        description="Pack an OpenGait dataset (or another packed store) into DST: one memory-mapped "
        "uint8 frames.npy plus an index, verified by checksum after writing.",
    )
    pack.add_argument("src", type=Path, help="OpenGait dataset root or packed store")
    pack.add_argument("dst", type=Path, help="store directory to create")
    pack.add_argument("--overwrite", action="store_true", help="replace DST if it exists")
    pack.set_defaults(func=_pack)


def _pretreat(args: argparse.Namespace) -> int:
    from workbench.data import DataError, pretreat_dataset

    if args.workers < 1:
        raise CLIError(f"--workers {args.workers}: use at least 1")
    if not args.src.is_dir():
        raise CLIError(f"{args.src}: raw data folder not found")
    try:
        summary = pretreat_dataset(args.src, args.dst, size=args.size, workers=args.workers)
    except DataError as exc:
        raise CLIError(str(exc)) from exc
    print(summary)
    print(f"output: {args.dst}")
    return 0 if summary.sequences_written else 1


def _pack(args: argparse.Namespace) -> int:
    from workbench.data import DataError, pack_dataset

    if not args.src.is_dir():
        raise CLIError(f"{args.src}: dataset not found; pass an OpenGait root or a packed store")
    if args.dst.exists() and not args.overwrite:
        raise CLIError(f"{args.dst}: already exists; pass --overwrite to replace it")
    try:
        store = pack_dataset(args.src, args.dst, overwrite=args.overwrite)
        print(f"verifying checksum of {store.frames_path} ...")
        store.verify()
    except (DataError, FileExistsError) as exc:
        raise CLIError(str(exc)) from exc
    frames = int(store.manifest["total_frames"])
    height, width = store.frame_shape
    print(f"packed {len(store)} sequences, {frames} frames of {height}x{width} into {args.dst} (checksum ok)")
    return 0
