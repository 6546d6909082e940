"""Logging a trial's hierarchy: identity params, split lists, tree/config/view-table artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.hierarchy import load_tree
from workbench.tracking import StudyTracker, hierarchy_params, load_trials, log_hierarchy, write_view_table

VIEWS = ["000", "018", "036", "054"]


def _view_table() -> pd.DataFrame:
    values = np.array([[np.nan, 91.0, 85.5, 80.0],
                       [92.0, np.nan, 93.0, 88.0],
                       [86.0, 94.5, np.nan, 95.0],
                       [81.0, 89.0, 96.0, np.nan]])
    table = pd.DataFrame(values, index=pd.Index(VIEWS, name="probe view"),
                         columns=pd.Index(VIEWS, name="gallery view"))
    return table


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


def test_view_table_files(tmp_path: Path) -> None:
    csv_path, png_path = write_view_table(_view_table(), tmp_path / "eval", stem="nm", title="NM rank-1")
    back = pd.read_csv(csv_path, index_col=0, dtype={"probe view": str})
    assert list(back.index) == VIEWS and list(back.columns) == VIEWS
    assert back.loc["018", "036"] == 93.0 and np.isnan(back.loc["000", "000"])
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="empty"):
        write_view_table(pd.DataFrame(), tmp_path, stem="none")


def test_log_hierarchy_params_and_artifacts(tracking_uri: str, tmp_path: Path) -> None:
    tree = load_tree("casia-b-paper")
    config = tmp_path / "trial.toml"
    config.write_text("[model]\nchannels = [32, 64, 128]\n")
    dendrogram = tmp_path / "dendrogram.png"
    dendrogram.write_bytes(b"\x89PNG fake")
    checkpoint = tmp_path / "ckpt-100.pt"
    checkpoint.write_bytes(b"weights")
    tables = write_view_table(_view_table(), tmp_path / "eval", stem="nm")

    tracker = StudyTracker(tracking_uri, "exp", "trees")
    run = tracker.start_trial(0)
    log_hierarchy(run, hierarchy_params(tree, tree.paper_cuts, [1, 2, 4]), tree=tree, dendrogram=dendrogram,
                  config_file=config, view_tables=tables, checkpoint=checkpoint)
    run.finish()

    def listing(folder: str) -> list[str]:
        return sorted(a.path for a in tracker.client.list_artifacts(run.run_id, folder))

    assert listing("hierarchy") == ["hierarchy/casia-b-paper.json", "hierarchy/dendrogram.png"]
    assert listing("config") == ["config/trial.toml"]
    assert listing("evaluation") == ["evaluation/nm.csv", "evaluation/nm.png"]
    assert listing("checkpoints") == ["checkpoints/ckpt-100.pt"]
    local = tracker.client.download_artifacts(run.run_id, "hierarchy/casia-b-paper.json", str(tmp_path / "dl"))
    assert load_tree(local).tree_id == tree.tree_id
    df = load_trials(tracking_uri, "exp", f"params.tree_id = '{tree.tree_id}'")
    assert list(df["params.stage2.split"]) == ["[40, 24]"]
