"""The ``workbench`` command line: one subcommand module per concern, wired here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from workbench import __version__

# Each module defines ``register(subparsers)`` adding its subcommands; each subcommand sets
# ``func(args) -> int``. Modules import their heavy dependencies inside the handlers so that
# ``workbench --help`` stays fast.
_COMMAND_MODULES = (
    "workbench.cli._data",
    "workbench.cli._hierarchy",
    "workbench.cli._models",
    "workbench.cli._import",
    "workbench.cli._cost",
    "workbench.cli._train",
    "workbench.cli._evaluate",
    "workbench.cli._study",
    "workbench.cli._compare",
    "workbench.cli._demo",
)


class CLIError(Exception):
    """An error to print as one clear line, without a traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="HSTL Workbench: discover body-part hierarchies in gait silhouettes, build HSTL "
        "models from them, train, evaluate and search them with Optuna, and track everything in MLflow.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``workbench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except CLIError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        if args.verbose:
            raise
        print(f"workbench: error: {exc}", file=sys.stderr)
        return 1


__all__ = ["CLIError", "build_parser", "main"]
