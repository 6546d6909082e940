"""PartitionTree: cuts, nesting, constructors, JSON round-trip and validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.hierarchy import PartitionTree, is_nested, list_trees, load_tree, preset_tree


def test_casia_preset_cuts_are_the_paper_levels() -> None:
    tree = preset_tree("casia-b-paper")
    assert tree.n_rows == 64 and tree.root == (0, 64)
    assert tree.cut(1) == [64]
    assert tree.cut(2) == [40, 24]
    assert tree.cut(4) == [8, 32, 16, 8]
    assert tree.cut(64) == [1] * 64
    assert tree.children((0, 64)) == [(0, 40), (40, 64)]
    assert tree.leaves[:2] == [(0, 1), (1, 2)]


def test_cuts_at_growing_k_refine_each_other() -> None:
    tree = preset_tree("gait3d-paper")
    cuts = tree.cuts(tree.reachable_ks())
    assert is_nested(cuts)
    assert all(sum(c) == 32 for c in cuts)


def test_ternary_split_makes_k2_unreachable_with_a_clear_error() -> None:
    tree = preset_tree("oumvlp-paper")
    assert tree.reachable_ks()[:4] == [1, 3, 5, 6]
    with pytest.raises(ValueError, match=r"no cut with 2 regions.*reachable k: 1, 3, 5, 6"):
        tree.cut(2)
    assert tree.cut(3) == [4, 24, 4]


def test_cut_with_more_regions_than_rows_is_an_error() -> None:
    with pytest.raises(ValueError, match="65 regions: it has 64 rows"):
        preset_tree("uniform-64").cut(65)


def test_from_linkage_builds_intervals_and_labels() -> None:
    # rows 0+1, then 2+3, then the two pairs
    z = np.array([[0, 1, 1.0, 2], [2, 3, 2.0, 2], [4, 5, 3.0, 4]])
    tree = PartitionTree.from_linkage(z, 4)
    assert tree.cut(2) == [2, 2]
    assert tree.cut(3) == [2, 1, 1]  # the higher merge (rows 2+3) is undone first
    assert tree.labels(2).tolist() == [0, 0, 1, 1]


def test_from_linkage_rejects_non_adjacent_merges() -> None:
    z = np.array([[0, 2, 1.0, 2], [1, 3, 2.0, 2], [4, 5, 3.0, 4]])
    with pytest.raises(ValueError, match="not adjacent"):
        PartitionTree.from_linkage(z, 4)


def test_from_linkage_makes_inverted_heights_monotone() -> None:
    z = np.array([[0, 1, 5.0, 2], [4, 2, 1.0, 3], [5, 3, 6.0, 4]])
    tree = PartitionTree.from_linkage(z, 4)
    assert tree.height((0, 3)) >= tree.height((0, 2))
    assert is_nested(tree.cuts([1, 2, 3, 4]))


def test_from_levels_validates_nesting() -> None:
    with pytest.raises(ValueError, match="does not refine"):
        PartitionTree.from_levels(64, [[40, 24], [32, 32]])
    with pytest.raises(ValueError, match="summing to 64"):
        PartitionTree.from_levels(64, [[40, 20]])


def test_json_round_trip_keeps_structure_provenance_and_id(tmp_path: Path) -> None:
    tree = preset_tree("oumvlp-paper").with_metadata(provenance={"dataset": "x", "seed": 3})
    path = tmp_path / "t.json"
    tree.save(path)
    back = PartitionTree.load(path)
    assert back == tree and back.tree_id == tree.tree_id
    assert back.provenance["dataset"] == "x" and "code_version" in back.provenance
    assert back.paper_cuts == tree.paper_cuts
    assert back.cuts(back.reachable_ks()[:6]) == tree.cuts(tree.reachable_ks()[:6])


def test_tree_id_ignores_provenance_but_not_structure() -> None:
    a = preset_tree("casia-b-paper")
    assert a.with_metadata(name="other", provenance={"dataset": "y"}).tree_id == a.tree_id
    assert preset_tree("uniform-64").tree_id != a.tree_id


def test_corrupt_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON"):
        PartitionTree.load(path)


def test_children_that_do_not_tile_the_parent_are_rejected(tmp_path: Path) -> None:
    obj = preset_tree("casia-b-paper").to_json()
    obj["nodes"][0]["split"] = [40, 20]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match=r"bad.json: nodes\[0\]: 'split' \[40, 20\] must be positive integers that tile"):
        PartitionTree.load(path)


def test_missing_field_and_hand_edited_id_are_reported(tmp_path: Path) -> None:
    obj = preset_tree("uniform-32").to_json()
    del obj["n_rows"]
    with pytest.raises(ValueError, match="missing field 'n_rows'"):
        PartitionTree.from_json(obj, "x.json")
    obj = preset_tree("uniform-32").to_json()
    obj["tree_id"] = "0" * 12
    with pytest.raises(ValueError, match="field 'tree_id'"):
        PartitionTree.from_json(obj, "x.json")


def test_child_higher_than_parent_is_rejected() -> None:
    with pytest.raises(ValueError, match="higher"):
        PartitionTree(3, {(0, 3): (1.0, [2, 1]), (0, 2): (2.0, [1, 1])})


def test_load_tree_resolves_preset_then_folder_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_tree("gait3d-paper").name == "gait3d-paper"
    folder = tmp_path / "hierarchies"
    preset_tree("uniform-32").with_metadata(name="mine", provenance={"dataset": "d"}).save(folder / "mine.json")
    monkeypatch.chdir(tmp_path)
    assert load_tree("mine").name == "mine"
    assert load_tree(str(folder / "mine.json")).n_rows == 32
    with pytest.raises(FileNotFoundError, match="workbench trees"):
        load_tree("nothing-here")
    names = [info.name for info in list_trees()]
    assert names[:5] == ["casia-b-paper", "oumvlp-paper", "gait3d-paper", "uniform-64", "uniform-32"]
    assert "mine" in names
