"""Validation subjects held out of the training subjects: disjoint, deterministic, checked on reuse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.data import DataError, Partition, SequenceRecord, read_partition, split_validation

TRAIN = tuple(f"{i:03d}" for i in range(1, 31))
TEST = tuple(f"{i:03d}" for i in range(31, 51))
PARTITION = Partition(train=TRAIN, test=TEST)


def test_a_fraction_holds_out_disjoint_subjects_and_keeps_the_test_set() -> None:
    split = split_validation(PARTITION, fraction=0.2, seed=0)
    assert len(split.validation) == 6 and len(split.train) == 24
    assert set(split.validation).isdisjoint(split.train)
    assert set(split.validation) | set(split.train) == set(TRAIN)
    assert split.test == TEST
    assert split.partition().test == split.validation and split.partition().train == split.train


def test_the_split_is_a_function_of_the_ids_and_the_seed() -> None:
    again = split_validation(Partition(train=tuple(reversed(TRAIN)), test=TEST), fraction=0.2, seed=0)
    assert again.validation == split_validation(PARTITION, fraction=0.2, seed=0).validation
    others = {split_validation(PARTITION, fraction=0.2, seed=s).validation for s in range(5)}
    assert len(others) > 1  # the seed matters


def test_an_explicit_id_list_is_used_as_given() -> None:
    split = split_validation(PARTITION, ids=["007", "003"], seed=0)
    assert split.validation == ("003", "007") and "003" not in split.train


def test_ids_outside_the_training_subjects_are_refused_by_name() -> None:
    with pytest.raises(DataError, match="ids \\['040'\\] are not training subjects"):
        split_validation(PARTITION, ids=["040"])


@pytest.mark.parametrize("train", [("a", "b", "c"), ("a", "b")])
def test_too_few_training_subjects_say_so_and_how_to_fix_it(train: tuple[str, ...]) -> None:
    with pytest.raises(DataError, match=r"at least 2 of each.*more training subjects"):
        split_validation(Partition(train=train, test=("z",)), fraction=0.2)


def test_a_tiny_fraction_still_holds_out_two_subjects() -> None:
    assert len(split_validation(PARTITION, fraction=0.01).validation) == 2


def _records(subjects: list[str], per_subject: int) -> list[SequenceRecord]:
    return [SequenceRecord(s, f"{i:02d}", "000", (Path(f"{s}/{i:02d}/000/x.pkl"),))
            for s in subjects for i in range(per_subject)]


def test_probe_per_subject_picks_one_sequence_of_each_validation_subject() -> None:
    split = split_validation(PARTITION, fraction=0.2, seed=3, records=_records(list(TRAIN), 4),
                             probe_per_subject=True)
    assert len(split.probe) == len(split.validation)
    assert sorted(key.split("-")[0] for key in split.probe) == list(split.validation)
    with pytest.raises(DataError, match="fewer than two sequences"):
        split_validation(PARTITION, fraction=0.2, records=_records(list(TRAIN), 1), probe_per_subject=True)


def test_saving_writes_a_partition_file_and_refuses_a_different_split_there(tmp_path: Path) -> None:
    path = tmp_path / "splits" / "study.json"
    split = split_validation(PARTITION, fraction=0.2, seed=0)
    split.save(path)
    loaded = read_partition(path)
    assert loaded.train == split.train and loaded.test == split.validation
    assert json.loads(path.read_text())["VALIDATION_SPLIT"]["request"] == "fraction 0.2"
    before = path.stat().st_mtime_ns
    split.save(path)  # the same split again (another worker, a resume): left as it is
    assert path.stat().st_mtime_ns == before
    with pytest.raises(DataError, match="different validation split"):
        split_validation(PARTITION, fraction=0.3, seed=0).save(path)
    assert read_partition(path).test == split.validation  # nothing overwritten


def test_the_same_split_from_a_moved_project_is_accepted_and_left_as_it_is(tmp_path: Path) -> None:
    # A project folder that moved, or a study record copied elsewhere, names its dataset's partition under
    # another path; the split itself is the same, so resuming or adding seeds there must not be refused.
    path = tmp_path / "splits" / "study.json"
    split = split_validation(PARTITION, fraction=0.2, seed=0)
    split.save(path)
    payload = json.loads(path.read_text())
    payload["VALIDATION_SPLIT"]["source"] = "<project>/data/elsewhere/partition.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    before = path.read_text()
    split.save(path)
    assert path.read_text() == before, "the record's file is not rewritten"
    payload["TEST_SET"] = payload["TEST_SET"][:-1]
    path.write_text(json.dumps(payload, indent=1) + "\n")
    with pytest.raises(DataError, match="different validation split"):
        split.save(path)
