"""``workbench data ...``: render synthetic data, pretreat raw frames, pack a dataset."""

from __future__ import annotations

import argparse
import importlib

_DATA_COMMANDS = ("workbench.cli._data_synth", "workbench.cli._data_io")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="render synthetic gait data, pretreat raw frames, pack datasets")
    data_sub = parser.add_subparsers(title="data commands", metavar="DATA_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 2)
    for name in _DATA_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(data_sub)
