"""render_dataset: OpenGait layout, partition and ground truth, determinism across seeds and workers."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from workbench.data import OpenGaitDataset, load_pickle, read_partition
from workbench.data.synth import (
    BOUNDARY_NAMES,
    PART_NAMES,
    SynthConfig,
    render_dataset,
    render_dataset_sequence,
)

# 3 subjects x 3 types x 2 views of 8-10 frames: 18 sequences, well under a second.
SMALL = SynthConfig(subjects=3, views=(0, 90), types=("nm-01", "nm-02", "cl-01"), frames=(8, 10))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "small"
    render_dataset(root, SMALL)
    return root


def test_layout_dtype_and_shape(small_root: Path) -> None:
    pkls = sorted(small_root.rglob("*.pkl"))
    assert len(pkls) == 3 * 3 * 2
    assert small_root / "001" / "nm-01" / "000" / "000.pkl" in pkls
    assert small_root / "003" / "cl-01" / "090" / "090.pkl" in pkls
    for path in pkls:
        # A bare numpy array pickled with protocol 4, as OpenGait's pretreatment writes it.
        raw = path.read_bytes()
        assert raw[:2] == b"\x80\x04"
        array = pickle.loads(raw)
        assert type(array) is np.ndarray and array.dtype == np.uint8
        assert array.ndim == 3 and array.shape[1:] == (64, 64) and 8 <= array.shape[0] <= 10
        assert np.array_equal(load_pickle(path), array)


def test_files_match_single_sequence_rendering(small_root: Path) -> None:
    stored = load_pickle(small_root / "002" / "nm-02" / "090" / "090.pkl")
    assert np.array_equal(stored, render_dataset_sequence(SMALL, 2, "nm-02", 90).silhouettes)


def test_partition_splits_by_subject(small_root: Path) -> None:
    data = json.loads((small_root / "partition.json").read_text())
    assert data == {"TRAIN_SET": ["001", "002"], "TEST_SET": ["003"]}
    partition = read_partition(small_root / "partition.json")
    assert list(partition.train) == ["001", "002"]


def test_ground_truth_file(small_root: Path) -> None:
    truth = json.loads((small_root / "ground_truth.json").read_text())
    assert truth["row_scale"] == 64
    assert truth["parts"] == list(PART_NAMES) and len(truth["parts"]) == len(truth["boundaries"]) + 1
    assert truth["boundaries"] == list(BOUNDARY_NAMES)
    assert sorted(truth["subjects"]) == ["001", "002", "003"]
    for rows in truth["subjects"].values():
        values = [rows[name] for name in BOUNDARY_NAMES]
        assert all(isinstance(v, float) for v in values)
        assert values == sorted(values) and values[0] > 0 and values[-1] < 64
    meta = truth["metadata"]
    assert meta["ground_truth_types"] == ["nm-01", "nm-02"]
    assert meta["config"]["subjects"] == 3 and meta["config"]["size"] == 64
    # Subjects differ in proportions, so their boundaries differ.
    hips = [rows["hips"] for rows in truth["subjects"].values()]
    assert max(hips) - min(hips) > 0.3


def test_ground_truth_matches_the_nm_frames(small_root: Path) -> None:
    truth = json.loads((small_root / "ground_truth.json").read_text())
    rows = np.concatenate([
        render_dataset_sequence(SMALL, 1, seq_type, view).boundary_rows
        for seq_type in ("nm-01", "nm-02") for view in (0, 90)
    ])  # fmt: skip
    expected = rows.mean(axis=0)
    assert np.allclose([truth["subjects"]["001"][n] for n in BOUNDARY_NAMES], expected, atol=1e-3)


def test_readable_by_the_opengait_reader(small_root: Path) -> None:
    train = OpenGaitDataset(small_root, subset="train")
    assert len(train) == 2 * 3 * 2
    assert {r.id for r in train.records} == {"001", "002"}
    assert train.load(0).shape[1:] == (64, 64)


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path, small_root: Path) -> None:
    render_dataset(tmp_path / "again", SMALL, workers=2)
    assert _files(tmp_path / "again") == _files(small_root)
    render_dataset(tmp_path / "seed1", SMALL.replace(seed=1))
    other = _files(tmp_path / "seed1")
    assert other.keys() == _files(small_root).keys()
    assert other["001/nm-01/090/090.pkl"] != _files(small_root)["001/nm-01/090/090.pkl"]


def test_size_128(tmp_path: Path) -> None:
    config = SynthConfig(subjects=2, views=(90,), types=("nm-01",), frames=(4, 4), size=128)
    render_dataset(tmp_path / "big", config)
    array = load_pickle(tmp_path / "big" / "001" / "nm-01" / "090" / "090.pkl")
    assert array.shape == (4, 128, 128)
    truth = json.loads((tmp_path / "big" / "ground_truth.json").read_text())
    # Rows stay on the 64-row scale whatever the frame size.
    assert truth["row_scale"] == 64 and truth["subjects"]["001"]["ankles"] < 64


def test_refuses_a_non_empty_directory_unless_overwriting(tmp_path: Path) -> None:
    config = SynthConfig(subjects=2, views=(90,), types=("nm-01",), frames=(3, 3))
    root = tmp_path / "out"
    render_dataset(root, config)
    with pytest.raises(FileExistsError, match=r"not empty.*--overwrite"):
        render_dataset(root, config)
    render_dataset(root, config.replace(subjects=1), overwrite=True)
    assert sorted(p.name for p in root.iterdir()) == ["001", "ground_truth.json", "partition.json"]
    (root / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt"):
        render_dataset(root, config, overwrite=True)
    assert (root / "notes.txt").read_text() == "mine"


def test_bad_workers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="workers"):
        render_dataset(tmp_path / "x", SMALL, workers=0)
