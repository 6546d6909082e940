"""Logging a trial's hierarchy: identity params, split lists, tree/config/view-table artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.hierarchy import load_tree
from workbench.tracking import StudyTracker, hierarchy_params, load_trials, log_hierarchy


def test_hierarchy_params_identify_tree_stages_and_cuts() -> None:
    tree = load_tree("casia-b-paper")
    params = hierarchy_params(tree, stage_splits=tree.paper_cuts, cut_ks=[1, 2, 4])
    assert params["tree_id"] == tree.tree_id and params["tree_name"] == "casia-b-paper"
    assert params["tree_rows"] == "64" and params["provenance.source"] == "preset"
    assert params["provenance.levels"] == "[[64], [40, 24], [8, 32, 16, 8]]"
    assert [params[f"stage{i}.split"] for i in (1, 2, 3)] == ["[64]", "[40, 24]", "[8, 32, 16, 8]"]
    assert params["cuts"] == "[1, 2, 4]"
    with pytest.raises(ValueError, match="stage 2 split"):
        hierarchy_params(tree, stage_splits=[[64], [0, 64]])


def test_log_hierarchy_params_and_artifacts(tracking_uri: str, tmp_path: Path) -> None:
    tree = load_tree("casia-b-paper")
    config = tmp_path / "trial.toml"
    config.write_text("[model]\nchannels = [32, 64, 128]\n")
    dendrogram = tmp_path / "dendrogram.png"
    dendrogram.write_bytes(b"\x89PNG fake")
    checkpoint = tmp_path / "ckpt-100.pt"
    checkpoint.write_bytes(b"weights")
    views_csv = tmp_path / "rank1_views.csv"
    views_csv.write_text("condition,probe_view,gallery_view,rank1\nNM,000,018,91.0\n")
    views_png = tmp_path / "rank1_views.png"
    views_png.write_bytes(b"\x89PNG fake")

    tracker = StudyTracker(tracking_uri, "exp", "trees")
    run = tracker.start_trial(0)
    log_hierarchy(run, hierarchy_params(tree, tree.paper_cuts, [1, 2, 4]), tree=tree, dendrogram=dendrogram,
                  config_file=config, view_tables=[views_csv, views_png], checkpoint=checkpoint)
    run.finish()

    def listing(folder: str) -> list[str]:
        return sorted(a.path for a in tracker.client.list_artifacts(run.run_id, folder))

    assert listing("hierarchy") == ["hierarchy/casia-b-paper.json", "hierarchy/dendrogram.png"]
    assert listing("config") == ["config/trial.toml"]
    assert listing("evaluation") == ["evaluation/rank1_views.csv", "evaluation/rank1_views.png"]
    assert listing("checkpoints") == ["checkpoints/ckpt-100.pt"]
    local = tracker.client.download_artifacts(run.run_id, "hierarchy/casia-b-paper.json", str(tmp_path / "dl"))
    assert load_tree(local).tree_id == tree.tree_id
    df = load_trials(tracking_uri, "exp", f"params.tree_id = '{tree.tree_id}'")
    assert list(df["params.stage2.split"]) == ["[40, 24]"]
