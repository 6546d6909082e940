"""The study files in studies/ parse, their spaces are feasible, and the paper choices rebuild the public models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.search import TrialChoice, check_candidates, load_candidates, load_study_config
from workbench.search._space import trial_train_config

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
    train = trial_train_config(config, choice, candidates, tmp_path, "unused", "split.json")
    with torch.device("meta"):
        model = train.model.build(num_classes=classes)
    assert sum(p.numel() for p in model.parameters()) == params


def test_model_families_get_their_own_overrides_and_tree_parts(tmp_path: Path) -> None:
    config = load_study_config(next(p for p in STUDIES if p.stem == "gaitgs-vs-hstl-synthetic"))
    candidates = {c.name: c for c in load_candidates(config)}
    built = {}
    for family in ("hstl-small", "gaitgs-small"):
        choice = TrialChoice(tree="casia-b-paper", cuts=(2, 4), channels=(4, 8, 16), lr=1e-3, frames=21,
                             fta=True, model=family)
        train = trial_train_config(config, choice, candidates, tmp_path, "unused", "split.json")
        with torch.device("meta"):
            built[family] = (train, train.model.build(num_classes=10))
    hstl_train, hstl = built["hstl-small"]
    gaitgs_train, gaitgs = built["gaitgs-small"]
    assert type(hstl).__name__ == "HSTL" and type(gaitgs).__name__ == "GaitGS"
    assert hstl.spec.split_lists()["stage3"] == [8, 32, 16, 8]
    assert gaitgs.spec.split_lists()["parts"] == [4, 16, 8, 4]  # the same cut at GaitGS's 32-row features
    assert (hstl_train.loss.triplet_margin, hstl_train.loss.ce_weight) == (0.2, 1.0)
    assert (gaitgs_train.loss.triplet_margin, gaitgs_train.loss.ce_weight) == (0.25, 0.0)


def test_overrides_for_an_unlisted_model_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[hierarchies]\npresets = ["uniform-64"]\n[models.gaitgs-small.loss]\nce_weight = 0.0\n')
    with pytest.raises(ValueError, match=r"space\.models"):
        load_study_config(path)
