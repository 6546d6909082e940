"""The ``workbench`` command line: one subcommand module per concern, wired here."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from workbench import __version__
from workbench._process import EXIT_TERMINATED, Terminated, sigterm_as_interrupt

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


# Exit codes, the same for every command (README, "Commands").
EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and its outcome is a failure (a study stopped before its budget, a non-finite loss)
EXIT_USAGE = 2  # bad usage or input (an option, a config value, a file or store), as argparse's own errors
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports a process ended by SIGINT
# EXIT_TERMINATED = 143: SIGTERM (a scheduler or `kill`), handled like Ctrl-C (workbench._process)


class CLIError(Exception):
    """An error to print as one clear line, without a traceback.

    Args:
        message: what is wrong, naming the file, option or URL, and the fix.
        exit_code: ``EXIT_USAGE`` (the default) for bad input, ``EXIT_FAILED`` for work that ran and failed.
    """

    def __init__(self, message: str, *, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def checkpoint_error(path: str | Path, exc: Exception) -> CLIError:
    """The one-line error for a checkpoint that could not be loaded (``exc``: the loader's error).

    A file that a weights-only load refused is described without torch's advice to load it anyway
    (``workbench.models.unpickling_refusal``), whichever loader read it.
    """
    from workbench.models import unpickling_refusal

    return CLIError(unpickling_refusal(path, exc) or str(exc))


#: Top-level modules that only the ``[search]`` extra installs (search and tracking); the core runs without them.
_SEARCH_EXTRA_MODULES = frozenset({"optuna", "optuna_dashboard", "mlflow", "pandas", "psycopg2"})


def _missing_extra(exc: ModuleNotFoundError, command: str) -> str | None:
    """The one-line fix when ``exc`` is a module of the ``[search]`` extra, else ``None``."""
    module = (exc.name or "").split(".")[0]
    if module not in _SEARCH_EXTRA_MODULES:
        return None
    where = f"`workbench {command}`" if command else "this command"
    return (f"{where} needs {module}, which the [search] extra installs: pip install 'hstl-workbench[search]' "
            "(in a checkout: pip install -e '.[search]')")


def _exit_code(exc: Exception) -> int:
    """2 for a value, or a file the user named, that cannot be used; 1 for other failures (a full disk ...)."""
    bad_input = (ValueError, FileNotFoundError, FileExistsError, IsADirectoryError, NotADirectoryError, PermissionError)
    return EXIT_USAGE if isinstance(exc, bad_input) else EXIT_FAILED


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
        return EXIT_USAGE
    try:
        with sigterm_as_interrupt():
            return int(func(args) or EXIT_OK)
    except ModuleNotFoundError as exc:
        words = list(sys.argv[1:] if argv is None else argv)
        fix = _missing_extra(exc, next((w for w in words if not w.startswith("-")), ""))
        if fix is None or args.verbose:
            raise
        print(f"workbench: error: {fix}", file=sys.stderr)
        return EXIT_USAGE
    except CLIError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("workbench: terminated (SIGTERM); what was saved is kept, `study run` resumes a study",
              file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("workbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, OSError) as exc:
        if args.verbose:
            raise
        print(f"workbench: error: {exc}", file=sys.stderr)
        return _exit_code(exc)


__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "CLIError",
    "build_parser",
    "checkpoint_error",
    "main",
]
