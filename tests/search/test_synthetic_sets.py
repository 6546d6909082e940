"""Sizing a study's synthetic set: more test subjects, the same training subjects, a data seed of its own."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from workbench.config import ConfigError
from workbench.data.synth import render_dataset_sequence
from workbench.search import load_study_config, synthetic_data
from workbench.search._prepare import synthetic_config, validation_split


def test_more_test_subjects_keep_the_training_subjects_and_the_first_test_subjects() -> None:
    base = synthetic_config("quick")
    wide = synthetic_config("quick", test_subjects=70)
    assert base.train_count == wide.train_count == 30
    assert wide.subjects == 100
    assert wide.subject_ids[:base.subjects] == base.subject_ids
    for subject in (1, 30, 31, 60):  # training subjects and test subjects the narrow set has too
        a = render_dataset_sequence(base, subject, "nm-01", 90)
        b = render_dataset_sequence(wide, subject, "nm-01", 90)
        assert np.array_equal(a.silhouettes, b.silhouettes)


def test_fewer_test_subjects_than_the_set_has() -> None:
    narrow = synthetic_config("default", test_subjects=5)
    assert (narrow.train_count, narrow.subjects) == (30, 35)


def test_the_rendered_partition_lists_the_new_test_subjects(tmp_path: Path) -> None:
    path = synthetic_data(tmp_path, "small", test_subjects=3, progress=False)
    assert path.name == "synthetic-small-test3-seed0"
    partition = json.loads((path / "partition.json").read_text())
    assert partition["TRAIN_SET"] == ["001", "002", "003", "004"]
    assert partition["TEST_SET"] == ["005", "006", "007"]
    assert synthetic_data(tmp_path, "small", test_subjects=3, progress=False) == path  # rendered once


def test_test_subjects_are_refused_for_a_dataset_on_disk(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('[data]\nsource = "/data/casia-b"\ntest_subjects = 40\n')
    with pytest.raises(ConfigError, match=r"study\.toml.*data\.test_subjects only sizes a rendered synthetic set"):
        load_study_config(study)
    study.write_text('[data]\ntest_subjects = 0\n')
    with pytest.raises(ConfigError, match=r"data\.test_subjects = 0"):
        load_study_config(study)


def test_the_data_seed_is_not_the_training_seed(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('[data]\nsynthetic = "small"\n[hierarchies]\npresets = ["uniform-64"]\n[train]\nseed = 4\n')
    config = load_study_config(study)
    assert config.train.seed == 4
    assert config.data.synthetic_seed == 0  # fresh training seeds train on the same rendered subjects


def test_validation_subjects_come_after_the_test_subjects_and_leave_the_others_as_they_were() -> None:
    base = synthetic_config("quick", test_subjects=20)
    held = synthetic_config("quick", test_subjects=20, validation_subjects=15)
    assert (held.train_count, held.subjects) == (30, 65)
    assert held.test_ids == base.test_ids == [f"{i:03d}" for i in range(31, 51)]
    assert held.validation_ids == [f"{i:03d}" for i in range(51, 66)]
    for subject in (1, 30, 31, 50):
        a = render_dataset_sequence(base, subject, "cl-01", 36)
        b = render_dataset_sequence(held, subject, "cl-01", 36)
        assert np.array_equal(a.silhouettes, b.silhouettes)
    # The named set's own test subjects stay when only validation subjects are asked for.
    assert synthetic_config("default", validation_subjects=4).test_ids == synthetic_config("default").test_ids


def test_a_study_holds_out_exactly_the_rendered_validation_subjects(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    study.write_text('[study]\nname = "held"\n[data]\nsynthetic = "small"\ntest_subjects = 3\nvalidation_subjects = 2\n'
                     '[hierarchies]\npresets = ["uniform-64"]\n')
    config = load_study_config(study, project_dir=tmp_path / "home")
    data = synthetic_data(config.project_dir, "small", test_subjects=3, validation_subjects=2, progress=False)
    assert data.name == "synthetic-small-test3-val2-seed0"
    partition = json.loads((data / "partition.json").read_text())
    assert partition["TRAIN_SET"] == ["001", "002", "003", "004", "008", "009"]
    assert partition["TEST_SET"] == ["005", "006", "007"]
    split_path, _ = validation_split(config, data)
    split = json.loads(split_path.read_text())
    assert split["TRAIN_SET"] == ["001", "002", "003", "004"]  # every rendered training subject trains
    assert split["TEST_SET"] == ["008", "009"]  # validation: only the rendered validation subjects
    assert split["VALIDATION_SPLIT"]["held_out_test_subjects"] == 3


def test_validation_subjects_are_refused_where_they_cannot_mean_anything(tmp_path: Path) -> None:
    study = tmp_path / "study.toml"
    cases = {
        '[data]\nsource = "/data/casia-b"\nvalidation_subjects = 40\n': r"study\.toml.*hold training subjects out with data\.validation",
        '[data]\nvalidation = 0.3\nvalidation_subjects = 40\n': r"both choose the validation subjects; keep one",
        '[data]\nvalidation_subjects = 1\n': r"data\.validation_subjects = 1: give a whole number of validation subjects >= 2",
    }
    for text, message in cases.items():
        study.write_text(text)
        with pytest.raises(ConfigError, match=message):
            load_study_config(study)


def test_validation_reads_its_own_frames_and_the_test_step_every_frame(write_study, monkeypatch) -> None:
    import workbench.evaluation as evaluation
    from workbench.search import run_study, score_on_test
    from workbench.search._prepare import prepare_study
    from workbench.search._runner import open_study

    seen: list[int | None] = []
    real = evaluation.evaluate_model

    def spy(*args, **kwargs):
        seen.append(kwargs.get("frames"))
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "evaluate_model", spy)
    path = write_study(name="frames", trials=1, iterations=2, presets='["uniform-64"]')
    path.write_text(path.read_text().replace("eval_batch_size = 32", "eval_batch_size = 32\nvalidation_frames = 3")
                    .replace("fta = [true, false]", "fta = [true]"))
    summary = run_study(path)
    assert summary.complete == 1 and seen and set(seen) == {3}, seen
    seen.clear()
    config = load_study_config(path)
    score_on_test(config, prepare_study(config, progress=False), open_study(config, summary.storage_url), every=True)
    assert seen == [None], "the test step reads every frame unless data.eval_frames caps it"
    study = path.with_name("bad.toml")
    study.write_text('[data]\nvalidation_frames = 0\n')
    with pytest.raises(ConfigError, match=r"data\.validation_frames = 0"):
        load_study_config(study)
