"""Presets: the checked-in JSON files equal what the code builds; paper part counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.hierarchy import list_presets, preset_tree, read_tree_file

HIERARCHY_DIR = Path(__file__).resolve().parents[2] / "hierarchies"


@pytest.mark.parametrize("name", list_presets())
def test_json_file_equals_the_code(name: str) -> None:
    stored = json.loads((HIERARCHY_DIR / f"{name}.json").read_text())
    built = preset_tree(name).to_json()
    stored["provenance"].pop("code_version", None)
    built["provenance"].pop("code_version", None)
    assert stored == built
    assert read_tree_file(HIERARCHY_DIR / f"{name}.json") == preset_tree(name)


@pytest.mark.parametrize(
    ("name", "parts"),
    [("casia-b-paper", [1, 2, 4]), ("oumvlp-paper", [1, 3, 5, 6]), ("gait3d-paper", [1, 2, 4, 5])],
)
def test_paper_cuts_are_reachable_cuts_of_the_tree(name: str, parts: list[int]) -> None:
    tree = preset_tree(name)
    assert [len(c) for c in tree.paper_cuts] == parts
    assert tree.cuts(parts) == tree.paper_cuts


def test_gait3d_levels() -> None:
    tree = preset_tree("gait3d-paper")
    assert tree.cut(2) == [20, 12] and tree.cut(4) == [4, 16, 8, 4] and tree.cut(5) == [4, 4, 12, 8, 4]


def test_uniform_trees_halve() -> None:
    assert preset_tree("uniform-64").cut(4) == [16] * 4
    assert preset_tree("uniform-32").cut(8) == [4] * 8
