"""Hierarchy files: JSON round-trip of ``PartitionTree``, name resolution and listing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.hierarchy._presets import list_presets, preset_description, preset_tree
from workbench.hierarchy._tree import Node, PartitionTree

FORMAT = "workbench.partition-tree/1"
HIERARCHY_DIR = "hierarchies"


def tree_to_json(tree: PartitionTree) -> dict[str, Any]:
    """A JSON-ready dict of ``tree``; internal nodes are listed in split order."""
    from workbench import __version__

    provenance = dict(tree.provenance)
    provenance.setdefault("code_version", __version__)
    return {
        "format": FORMAT,
        "name": tree.name,
        "n_rows": tree.n_rows,
        "tree_id": tree.tree_id,
        "provenance": provenance,
        "cuts": [list(c) for c in tree.paper_cuts],
        "nodes": [
            {"interval": [start, stop], "height": height, "split": sizes}
            for (start, stop), (height, sizes) in tree.splits().items()
        ],
    }


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: str) -> Any:
    if key not in obj:
        raise ValueError(f"{source}: missing field {key!r}; hierarchy files need {key!r} (see `workbench trees`)")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{source}: field {key!r} has type {type(value).__name__}, expected {kind}")
    return value


def tree_from_json(obj: Mapping[str, Any], source: str = "<json>") -> PartitionTree:
    """Rebuild and validate a tree; every error names ``source`` and the field at fault."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{source}: expected a JSON object, got {type(obj).__name__}")
    fmt = obj.get("format", FORMAT)
    if fmt != FORMAT:
        raise ValueError(f"{source}: field 'format' is {fmt!r}; this version reads {FORMAT!r}")
    n_rows = _field(obj, "n_rows", int, source)
    nodes = _field(obj, "nodes", list, source)
    splits: dict[Node, tuple[float, list[int]]] = {}
    for i, entry in enumerate(nodes):
        where = f"{source}: nodes[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be an object with 'interval', 'height' and 'split'")
        interval = _field(entry, "interval", list, where)
        height = _field(entry, "height", (int, float), where)
        sizes = _field(entry, "split", list, where)
        if len(interval) != 2 or not all(isinstance(v, int) for v in interval):
            raise ValueError(f"{where}: 'interval' must be two integers [start, stop], got {interval}")
        if not all(isinstance(v, int) and v > 0 for v in sizes) or sum(sizes) != interval[1] - interval[0]:
            raise ValueError(
                f"{where}: 'split' {sizes} must be positive integers that tile the interval {interval}"
            )
        node = (interval[0], interval[1])
        if node in splits:
            raise ValueError(f"{where}: interval {interval} appears twice")
        splits[node] = (float(height), sizes)
    cuts = obj.get("cuts", [])
    provenance = obj.get("provenance", {})
    if not isinstance(provenance, Mapping):
        raise ValueError(f"{source}: field 'provenance' must be an object")
    try:
        tree = PartitionTree(
            n_rows, splits, name=str(obj.get("name", "")), provenance=provenance, paper_cuts=cuts
        )
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: {exc}") from exc
    stored_id = obj.get("tree_id")
    if stored_id is not None and stored_id != tree.tree_id:
        raise ValueError(
            f"{source}: field 'tree_id' is {stored_id!r} but the nodes give {tree.tree_id!r}; the file was "
            "edited by hand — delete 'tree_id' to accept the new structure"
        )
    return tree


def save_tree(tree: PartitionTree, path: str | Path) -> None:
    """Write ``tree`` to ``path`` as indented JSON (creating the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tree_to_json(tree), indent=2) + "\n")


def read_tree_file(path: str | Path) -> PartitionTree:
    """Read one hierarchy JSON file."""
    path = Path(path)
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such hierarchy file") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc}); regenerate it with `workbench discover`") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not a hierarchy file (binary, not JSON text); pass a tree JSON written by "
                         "`workbench discover` or a preset name (`workbench trees` lists them)") from exc
    return tree_from_json(obj, str(path))


def load_tree(name_or_path: str | Path, search_dir: str | Path = HIERARCHY_DIR) -> PartitionTree:
    """A preset by name, else ``<search_dir>/<name>.json``, else a path to a hierarchy file."""
    text = str(name_or_path)
    if text in list_presets():
        return preset_tree(text)
    candidate = Path(search_dir) / f"{text}.json"
    if candidate.is_file():
        return read_tree_file(candidate)
    path = Path(text)
    if path.is_file():
        return read_tree_file(path)
    raise FileNotFoundError(
        f"no hierarchy {text!r}: not a preset ({', '.join(list_presets())}), not {candidate}, and not a file; "
        "run `workbench trees` to list what is available"
    )


@dataclass(frozen=True)
class TreeInfo:
    """One row of ``workbench trees``."""

    name: str
    source: str
    n_rows: int
    tree_id: str
    cuts: list[list[int]]
    description: str


def list_trees(search_dir: str | Path = HIERARCHY_DIR) -> list[TreeInfo]:
    """The presets, then every readable ``*.json`` in ``search_dir`` that is not a preset copy."""
    infos = []
    for name in list_presets():
        tree = preset_tree(name)
        infos.append(TreeInfo(name, "preset", tree.n_rows, tree.tree_id, tree.paper_cuts, preset_description(name)))
    folder = Path(search_dir)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        if path.stem in list_presets():
            continue
        tree = read_tree_file(path)
        prov = tree.provenance
        description = ", ".join(
            f"{key}={prov[key]}" for key in ("dataset", "descriptor", "linkage", "metric") if key in prov
        )
        infos.append(TreeInfo(path.stem, str(path), tree.n_rows, tree.tree_id, tree.paper_cuts, description))
    return infos


__all__ = ["TreeInfo", "list_trees", "load_tree", "read_tree_file", "save_tree", "tree_from_json", "tree_to_json"]
