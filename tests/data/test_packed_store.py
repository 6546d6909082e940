"""PackedStore: packing from either layout, zero-copy loads, checksums, size checks, atomic writes."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import workbench.data._pack as pack_module
from workbench.data import (
    CorruptFileError,
    DataError,
    OpenGaitDataset,
    PackedStore,
    SequenceSource,
    is_packed_store,
    open_source,
    pack_dataset,
    save_pickle,
)


@pytest.fixture
def store(opengait_root: Path, tmp_path: Path) -> PackedStore:
    return pack_dataset(opengait_root, tmp_path / "store", progress=False)


def test_store_holds_every_sequence_unchanged(opengait_root: Path, store: PackedStore) -> None:
    source = OpenGaitDataset(opengait_root)
    assert isinstance(store, SequenceSource) and len(store) == len(source) == 36
    for index in range(len(source)):
        assert store.records[index].key == source.records[index].key
        assert np.array_equal(store.load(index), source.load(index))
    assert store.frame_shape == (64, 64)
    assert int(store.lengths.sum()) == store.manifest["total_frames"]
    store.verify()


def test_load_is_a_read_only_view_into_the_map(store: PackedStore) -> None:
    seq = store.load(3)
    assert type(seq) is np.ndarray and seq.dtype == np.uint8
    assert not seq.flags.writeable
    assert np.shares_memory(seq, store.frames)
    with pytest.raises(ValueError, match="read-only"):
        seq[0, 0, 0] = 1


def test_open_source_detects_stores_and_filters_them(store: PackedStore) -> None:
    assert is_packed_store(store.path)
    train_nm = open_source(store.path, subset="train", types=["nm"], views=["090"])
    assert isinstance(train_nm, PackedStore)
    assert {(r.id, r.type, r.view) for r in train_nm.records} == {
        (i, t, "090") for i in ("001", "002", "003", "004") for t in ("nm-01", "nm-02")
    }
    assert (store.path / "partition.json").is_file(), "side files travel with the store"
    full = {r.key: i for i, r in enumerate(store.records)}
    for index, record in enumerate(train_nm.records):
        assert np.array_equal(train_nm.load(index), store.load(full[record.key]))


def test_pack_from_a_store_reproduces_it(store: PackedStore, tmp_path: Path) -> None:
    again = pack_dataset(store.path, tmp_path / "again", progress=False)
    assert again.manifest["checksum"] == store.manifest["checksum"]
    assert again.manifest["sequences"] == store.manifest["sequences"]


def test_verify_detects_changed_frames(store: PackedStore) -> None:
    with store.frames_path.open("r+b") as fh:
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    with pytest.raises(CorruptFileError, match=r"frames\.npy: checksum mismatch"):
        PackedStore(store.path).verify()


def test_opening_checks_the_file_size(store: PackedStore) -> None:
    with store.frames_path.open("r+b") as fh:
        fh.truncate(store.frames_path.stat().st_size - 4096)
    with pytest.raises(CorruptFileError, match=r"frames\.npy: .*(truncated|manifest says)"):
        PackedStore(store.path)


def test_damaged_or_foreign_manifests_are_refused(store: PackedStore, tmp_path: Path) -> None:
    manifest = store.path / "workbench_packed.json"
    data = json.loads(manifest.read_text())
    data["version"] = 99
    manifest.write_text(json.dumps(data))
    with pytest.raises(DataError, match="version 99"):
        PackedStore(store.path)
    manifest.write_text("{")
    with pytest.raises(CorruptFileError, match="not valid JSON"):
        PackedStore(store.path)
    with pytest.raises(FileNotFoundError, match="not a packed store"):
        PackedStore(tmp_path)


def test_interrupted_pack_leaves_nothing_that_looks_complete(
    opengait_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = OpenGaitDataset(opengait_root)
    calls = {"n": 0}
    real_load = source.load

    def dying_load(index: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return real_load(index)

    monkeypatch.setattr(source, "load", dying_load)
    with pytest.raises(KeyboardInterrupt):
        pack_dataset(source, tmp_path / "half", progress=False)
    assert not (tmp_path / "half").exists()
    assert not any(p.name.startswith(".half") for p in tmp_path.iterdir())


def test_a_killed_pack_staging_folder_is_not_a_store(
    opengait_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Simulate a hard kill (no cleanup): stop right before the manifest would be written.
    def killed(directory: Path, manifest: dict[str, object]) -> None:
        raise SystemExit(9)

    monkeypatch.setattr(pack_module, "write_manifest", killed)
    monkeypatch.setattr(pack_module.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(SystemExit):
        pack_dataset(opengait_root, tmp_path / "store", progress=False)
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".store.packing-")]
    assert len(leftovers) == 1 and (leftovers[0] / "frames.npy").is_file()
    assert not (tmp_path / "store").exists()
    assert not is_packed_store(leftovers[0])


def test_existing_destination_needs_overwrite(store: PackedStore, make_opengait) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(FileExistsError, match="already exists"):
        pack_dataset(store.path, store.path, progress=False)
    other = make_opengait("other", ids=("007", "008"), types=("nm-01",), views=("000",))
    replaced = pack_dataset(other, store.path, overwrite=True, progress=False)
    assert len(replaced) == 2 and {r.id for r in replaced.records} == {"007", "008"}


def test_mixed_frame_sizes_cannot_be_packed(opengait_root: Path, tmp_path: Path) -> None:
    save_pickle(np.zeros((5, 128, 128), np.uint8), opengait_root / "003" / "nm-01" / "000" / "sils.pkl")
    with pytest.raises(DataError, match=r"003/nm-01/000/sils\.pkl .*frames of \[128, 128\].*one frame size"):
        pack_dataset(opengait_root, tmp_path / "mixed", progress=False)
    assert not (tmp_path / "mixed").exists()


def test_a_store_pickles_without_its_frames(store: PackedStore) -> None:
    store.load(0)
    clone = pickle.loads(pickle.dumps(store))
    assert clone._frames is None
    assert np.array_equal(clone.load(5), store.load(5))
    assert len(pickle.dumps(store)) < 100_000


def test_overwrite_replaces_only_a_store_the_packer_wrote(store: PackedStore, opengait_root: Path,
                                                          tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("three years of work")
    with pytest.raises(FileExistsError, match="not a packed store"):
        pack_dataset(opengait_root, notes, overwrite=True, progress=False)
    assert (notes / "thesis.txt").read_text() == "three years of work"
    with pytest.raises(FileExistsError, match="holds it"):
        pack_dataset(opengait_root, opengait_root.parent, overwrite=True, progress=False)
    with pytest.raises(FileExistsError, match="holds it"):
        pack_dataset(store.path, store.path, overwrite=True, progress=False)
    (store.path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=r"did not write \(mine\.txt\)"):
        pack_dataset(opengait_root, store.path, overwrite=True, progress=False)
    assert (store.path / "mine.txt").read_text() == "keep me"
    assert opengait_root.is_dir() and any(opengait_root.rglob("*.pkl"))
