"""OpenGaitDataset: layout scanning, filters, partitions, labels and validation errors."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from workbench.data import (
    DataError,
    OpenGaitDataset,
    SequenceSource,
    load_pickle,
    open_source,
    read_partition,
    save_pickle,
    source_labels,
)


def test_reads_every_sequence_with_metadata(opengait_root: Path) -> None:
    data = OpenGaitDataset(opengait_root)
    assert isinstance(data, SequenceSource)
    assert len(data) == 6 * 3 * 2
    first = data.records[0]
    assert (first.id, first.type, first.view) == ("001", "bg-01", "000")
    assert first.paths == (opengait_root / "001" / "bg-01" / "000" / "sils.pkl",)
    seq = data.load(0)
    assert seq.dtype == np.uint8 and seq.ndim == 3 and seq.shape[1:] == (64, 64)
    assert np.array_equal(seq, load_pickle(first.paths[0]))
    assert data.source_name == str(opengait_root)


def test_side_files_and_hidden_folders_are_ignored(opengait_root: Path) -> None:
    (opengait_root / "ground_truth.json").write_text("{}")
    (opengait_root / ".cache" / "x" / "y").mkdir(parents=True)
    assert len(OpenGaitDataset(opengait_root)) == 36


def test_subsets_follow_the_partition(opengait_root: Path) -> None:
    train = OpenGaitDataset(opengait_root, subset="train")
    test = OpenGaitDataset(opengait_root, partition=opengait_root / "partition.json", subset="test")
    assert {r.id for r in train.records} == {"001", "002", "003", "004"}
    assert {r.id for r in test.records} == {"005", "006"}
    assert len(train) + len(test) == 36


def test_type_filter_matches_prefix_or_exact_and_views_exact(opengait_root: Path) -> None:
    nm = OpenGaitDataset(opengait_root, types=["nm"])
    assert {r.type for r in nm.records} == {"nm-01", "nm-02"}
    exact = OpenGaitDataset(opengait_root, types=["nm-02"], views=["090"])
    assert {(r.type, r.view) for r in exact.records} == {("nm-02", "090")}
    assert len(exact) == 6
    with pytest.raises(DataError, match=r"no sequence matches types=\['n'\]"):
        OpenGaitDataset(opengait_root, types=["n"])


def test_labels_are_contiguous_over_the_selected_ids(opengait_root: Path) -> None:
    test = OpenGaitDataset(opengait_root, subset="test")
    assert test.label_map == {"005": 0, "006": 1}
    labels = source_labels(test)
    assert labels.dtype == np.int64 and set(labels.tolist()) == {0, 1}
    assert [test.label(i) for i in range(len(test))] == labels.tolist()


def test_parallel_modalities_load_together(make_opengait: Callable[..., Path]) -> None:
    root = make_opengait(modalities=("a_sils", "b_sils"))
    data = OpenGaitDataset(root)
    assert [p.name for p in data.records[0].paths] == ["a_sils.pkl", "b_sils.pkl"]
    both = data.load_modalities(0)
    assert len(both) == 2 and np.array_equal(both[0], data.load(0))


def test_parallel_modalities_of_unequal_length_are_an_error(make_opengait: Callable[..., Path]) -> None:
    root = make_opengait(modalities=("a", "b"))
    bad = root / "001" / "bg-01" / "000" / "b.pkl"
    save_pickle(load_pickle(bad)[:2], bad)
    with pytest.raises(DataError, match=r"b\.pkl: 2 frames, but the parallel a\.pkl has"):
        OpenGaitDataset(root).load_modalities(0)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((64, 64), np.uint8), r"expected uint8 \[frames, h, w\], got uint8 \[64, 64\]"),
        (np.zeros((3, 64, 64), np.float64), r"got float64 \[3, 64, 64\]"),
        (np.zeros((0, 64, 64), np.uint8), "zero frames"),
        ([1, 2, 3], "got list"),
    ],
)
def test_bad_arrays_are_reported_with_the_file(opengait_root: Path, array: object, message: str) -> None:
    path = opengait_root / "001" / "bg-01" / "000" / "sils.pkl"
    path.write_bytes(pickle.dumps(array, protocol=4))
    with pytest.raises(DataError, match=rf"001/bg-01/000/sils\.pkl: .*{message}"):
        OpenGaitDataset(opengait_root).load(0)


def test_partition_ids_missing_on_disk_warn_with_a_count(opengait_root: Path, tmp_path: Path) -> None:
    partition = tmp_path / "part.json"
    partition.write_text(json.dumps({"TRAIN_SET": ["001", "002", "900", "901"], "TEST_SET": ["005"]}))
    with pytest.warns(UserWarning, match=r"2 of 4 train entries .* have no sequence on disk \(900, 901\)"):
        data = OpenGaitDataset(opengait_root, partition=partition, subset="train")
    assert {r.id for r in data.records} == {"001", "002"}


def test_probe_subset_uses_gait3d_keys(opengait_root: Path, tmp_path: Path) -> None:
    partition = tmp_path / "gait3d.json"
    partition.write_text(
        json.dumps({"TRAIN_SET": ["001"], "TEST_SET": ["005", "006"], "PROBE_SET": ["005-nm-01-090", "006-bg-01-000"]})
    )
    probe = OpenGaitDataset(opengait_root, partition=partition, subset="probe")
    assert [r.key for r in probe.records] == ["005-nm-01-090", "006-bg-01-000"]
    assert read_partition(partition).probe == ("005-nm-01-090", "006-bg-01-000")
    with pytest.raises(DataError, match="has no PROBE_SET"):
        OpenGaitDataset(opengait_root, subset="probe")


def test_empty_dataset_names_the_root_and_the_layout(tmp_path: Path) -> None:
    (tmp_path / "empty" / "001" / "nm-01").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty: empty dataset: searched .*empty/<id>/<type>/<view>/\*\.pkl"):
        OpenGaitDataset(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        OpenGaitDataset(tmp_path / "absent")


def test_missing_or_malformed_partition_files(opengait_root: Path, tmp_path: Path) -> None:
    (opengait_root / "partition.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"needs a partition file: .*partition\.json does not exist"):
        OpenGaitDataset(opengait_root, subset="train")
    with pytest.raises(FileNotFoundError, match=r"nope\.json: partition file not found"):
        OpenGaitDataset(opengait_root, partition=tmp_path / "nope.json", subset="train")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"TRAIN_SET": ["001"]}))
    with pytest.raises(DataError, match=r"bad\.json: missing 'TEST_SET'"):
        read_partition(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"bad\.json: not valid JSON"):
        read_partition(bad)
    with pytest.raises(DataError, match="subset='val': expected one of train, test, probe"):
        OpenGaitDataset(opengait_root, partition=tmp_path / "bad.json", subset="val")


def test_open_source_detects_an_opengait_root(opengait_root: Path) -> None:
    source = open_source(opengait_root, subset="train", views=["000"])
    assert isinstance(source, OpenGaitDataset)
    assert len(source) == 4 * 3
