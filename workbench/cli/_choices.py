"""Choices and help read from the library's registries only when argparse needs them.

Building the parser (and so ``workbench --help``) imports nothing heavy: a registry's module is
imported the first time a command's argument is checked against it or its help is printed, so a
newly registered descriptor, protocol or model family is a choice without a second list here.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator, Sequence
from typing import Any, overload


class RegistryChoices(Sequence[str]):
    """The names ``module.attribute`` holds (a tuple, or a function returning names), read at each use.

    Reading at each use (the module is imported once) keeps a name registered after the parser was
    built a choice. Give the argument a ``metavar``: argparse then lists the choices only where help
    text asks for ``%(choices)s`` or a value is refused.
    """

    def __init__(self, module: str, attribute: str, **kwargs: Any) -> None:
        self._module, self._attribute, self._kwargs = module, attribute, kwargs

    def _load(self) -> tuple[str, ...]:
        value = getattr(importlib.import_module(self._module), self._attribute)
        return tuple(value(**self._kwargs) if callable(value) else value)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...

    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._load()[index]

    def __len__(self) -> int:
        return len(self._load())

    def __contains__(self, value: object) -> bool:
        return value in self._load()

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __repr__(self) -> str:
        return f"RegistryChoices({self._module}.{self._attribute})"


class LazyEpilogFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps descriptions as written and accepts an epilog given as a function, called when help is printed."""

    def _format_text(self, text: Any) -> str:
        return super()._format_text(text() if callable(text) else text)


#: The precisions a model may run in (``workbench.models.AMP_CHOICES``).
AMP = RegistryChoices("workbench.models", "AMP_CHOICES")
#: Evaluation protocols and per-part distances (``workbench.evaluation``).
PROTOCOLS = RegistryChoices("workbench.evaluation", "list_protocols")
DISTANCES = RegistryChoices("workbench.evaluation", "METRICS")
#: Row descriptors that read silhouettes, linkages and row distances of discovery (``workbench.hierarchy``).
SILHOUETTE_DESCRIPTORS = RegistryChoices("workbench.hierarchy", "list_descriptors", kind="silhouette")
#: Every row descriptor, those that read a trained model's feature maps too (``workbench discover --checkpoint``).
DESCRIPTORS = RegistryChoices("workbench.hierarchy", "list_descriptors")
LINKAGES = RegistryChoices("workbench.hierarchy", "LINKAGES")
ROW_METRICS = RegistryChoices("workbench.hierarchy", "METRICS")
