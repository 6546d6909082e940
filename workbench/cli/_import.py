"""``workbench import``: a public HSTL (OpenGait) checkpoint as a workbench checkpoint."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TREE_HELP = ("the partition tree whose cuts give a public checkpoint's split heights, which its weights do not "
             "store: a preset name (see `workbench trees`) or a tree JSON file (default: the one paper tree "
             "with the checkpoint's regions per stage and part count, with a warning)")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` command."""
    p = subparsers.add_parser(
        "import",
        help="turn a public HSTL (OpenGait) checkpoint into a workbench checkpoint",
        description="Read a checkpoint of the public HSTL code ({'model': state_dict, ...} or a bare state "
        "dict; loaded without running any code from it), rebuild the network from its tensor shapes and write "
        "OUT/checkpoint-<iteration>.pt, the format `workbench train` writes, which `workbench evaluate` and "
        "studies read. The weights give channels and regions per stage but not where the regions meet: "
        "--tree chooses the tree cut at those counts; without it the one paper tree that fits is used, with "
        "a warning.",
    )
    p.add_argument("checkpoint", type=Path, help="public HSTL checkpoint (.pt)")
    p.add_argument("--tree", help=TREE_HELP)
    p.add_argument("--out", type=Path, required=True, help="folder for the workbench checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the checkpoint(s) already in --out, so that it holds the imported model only")
    p.set_defaults(func=import_command)


def tree_option(text: str | None) -> Any:
    """The ``PartitionTree`` a ``--tree`` option names (None without one); a bad name is a ``CLIError``."""
    from workbench.cli import CLIError
    from workbench.hierarchy import load_tree

    if text is None:
        return None
    try:
        return load_tree(text)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        raise CLIError(f"--tree {text}: {exc}") from exc


@contextmanager
def reported_guesses() -> Iterator[None]:
    """Print each ``GuessedSplitsWarning`` raised inside as one ``workbench: warning:`` line on stderr."""
    from workbench.models import GuessedSplitsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", GuessedSplitsWarning)
        try:
            yield
        finally:
            for item in caught:
                if issubclass(item.category, GuessedSplitsWarning):
                    print(f"workbench: warning: {item.message}", file=sys.stderr)
                else:
                    warnings.showwarning(item.message, item.category, item.filename, item.lineno)


def import_command(args: argparse.Namespace) -> int:
    """Handler of ``workbench import``."""
    from workbench.cli import CLIError
    from workbench.training import (
        CheckpointError,
        checkpoint_path,
        import_opengait,
        list_checkpoints,
        save_checkpoint,
    )

    if not args.checkpoint.is_file():
        raise CLIError(f"{args.checkpoint}: checkpoint not found; pass a checkpoint file of the public HSTL code")
    if args.out.exists() and not args.out.is_dir():
        raise CLIError(f"--out {args.out}: is a file; --out names a folder for the workbench checkpoint")
    existing = list_checkpoints(args.out)
    if existing and not args.overwrite:
        raise CLIError(f"--out {args.out}: already holds {', '.join(p.name for p in existing)}; pass --overwrite to "
                       "replace it with the imported model, or choose another folder")
    tree = tree_option(args.tree)
    try:
        with reported_guesses():
            state = import_opengait(args.checkpoint, tree=tree)
    except CheckpointError as exc:
        raise CLIError(str(exc)) from exc
    path = save_checkpoint(state, checkpoint_path(args.out, state["iteration"]))
    for old in existing:
        # Studies and `evaluate` read a folder's newest checkpoint: leave none but the imported one.
        if old != path:
            old.unlink()
    info = state["imported"]
    how = "guessed, see the warning" if info["tree_guessed"] else "given"
    splits = ", ".join(f"{block} {split}" for block, split in info["splits"].items())
    print(f"checkpoint: {path}\ntree: {info['tree'] or info['tree_id']} ({how}); splits: {splits}\n"
          f"evaluate it with: workbench evaluate {path} --data DATA")
    return 0
