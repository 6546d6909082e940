"""Extensions from other distributions: Python entry points, imported the first time a registry is read.

A distribution that adds a model family, a row descriptor or a protocol names the module that registers
it under the entry-point group ``workbench.models``, ``workbench.descriptors`` or ``workbench.protocols``,
e.g. in its ``pyproject.toml``::

    [project.entry-points."workbench.models"]
    my-family = "my_package.family"

Nothing is imported until the registry of that group is first listed or searched.
"""

from __future__ import annotations

import importlib.metadata

_LOADED: set[str] = set()


class PluginError(RuntimeError):
    """An installed extension failed to load; the message names its distribution and entry point."""


def load_entry_points(group: str) -> None:
    """Import every entry point of ``group`` once per process (later calls return at once)."""
    if group in _LOADED:
        return
    # Marked first: an extension module that reads the registry while it registers must not recurse.
    _LOADED.add(group)
    for entry in importlib.metadata.entry_points(group=group):
        try:
            entry.load()
        except Exception as exc:
            dist = entry.dist.name if entry.dist is not None else "an installed distribution"
            raise PluginError(
                f"entry point {entry.name!r} ({entry.value}) of {dist}, group {group}, failed to load: "
                f"{type(exc).__name__}: {exc}; fix or uninstall {dist}"
            ) from exc
