"""The study files in studies/ parse, their spaces are feasible, and the paper choices rebuild the public models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.search import TrialChoice, check_candidates, load_candidates, load_study_config
from workbench.search._space import trial_train_config
from workbench.training import build_model

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.toml"))


def test_studies_are_shipped() -> None:
    names = {p.stem for p in STUDIES}
    assert {"quick-synthetic", "pareto-synthetic", "casia-b", "oumvlp", "grew", "gait3d"} <= names


@pytest.mark.parametrize("path", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_file_is_valid_and_feasible(path: Path) -> None:
    config = load_study_config(path)
    assert config.study.name
    candidates = load_candidates(config)
    assert check_candidates(candidates, config.space) == []


@pytest.mark.parametrize(
    ("study", "tree", "cuts", "classes", "params"),
    [
        ("casia-b", "casia-b-paper", (2, 4), 74, 4_745_834),
        ("oumvlp", "oumvlp-paper", (3, 5, 6), 5153, 89_103_603),
        ("gait3d", "gait3d-paper", (2, 4, 5), 3000, 54_719_087),
    ],
)
def test_paper_choice_rebuilds_the_public_model(study: str, tree: str, cuts: tuple[int, ...], classes: int,
                                                params: int, tmp_path: Path) -> None:
    config = load_study_config(next(p for p in STUDIES if p.stem == study))
    candidates = {c.name: c for c in load_candidates(config)}
    choice = TrialChoice(tree=tree, cuts=cuts, channels=config.space.channels[0], lr=config.space.lr[0],
                         frames=30, fta=True)
    train = trial_train_config(config, choice, candidates, tmp_path, "unused")
    with torch.device("meta"):
        model = build_model(train.model, num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == params
