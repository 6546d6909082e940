"""Checkpoint files: atomic writes, rotation, safe loading, RNG round-trips, inference loading."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.training import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)


def _state(step: int) -> dict[str, object]:
    return {"format": 1, "model": {"w": torch.full((3,), float(step))}, "iteration": step}


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    path = save_checkpoint(_state(5), checkpoint_path(tmp_path, 5))
    assert path.name == "checkpoint-00000005.pt"
    state = load_checkpoint(path)
    assert state["iteration"] == 5 and torch.equal(state["model"]["w"], torch.full((3,), 5.0))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_failed_save_leaves_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    good = save_checkpoint(_state(1), checkpoint_path(tmp_path, 1))
    target = checkpoint_path(tmp_path, 1)  # overwrite the same name: the worst case

    def dies_half_way(obj: object, fh: object) -> None:
        fh.write(b"partial bytes")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(_state(2), target)
    monkeypatch.undo()
    assert load_checkpoint(good)["iteration"] == 1
    assert [p.name for p in tmp_path.iterdir()] == [good.name]


def test_listing_ignores_temp_files_and_prune_keeps_newest(tmp_path: Path) -> None:
    for step in (3, 10, 7, 1):
        save_checkpoint(_state(step), checkpoint_path(tmp_path, step))
    (tmp_path / ".checkpoint-00000011.pt.999.tmp").write_bytes(b"killed mid-save")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        f"checkpoint-{s:08d}.pt" for s in (1, 3, 7, 10)
    ]
    assert latest_checkpoint(tmp_path) == checkpoint_path(tmp_path, 10)
    prune_checkpoints(tmp_path, keep_last=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-00000007.pt", "checkpoint-00000010.pt", "notes.txt"
    ]
    assert latest_checkpoint(tmp_path / "missing") is None


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "checkpoint-00000001.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match=str(bad)):
        load_checkpoint(bad)
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a workbench checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_loading_refuses_arbitrary_objects(tmp_path: Path) -> None:
    # weights_only loading: a pickled callable is refused instead of being run.
    torch.save({"model": {}, "hook": print}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(tmp_path / "evil.pt")


def test_rng_state_round_trips_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(2))
    save_checkpoint({"model": {}, "rng": [state]}, tmp_path / "c.pt")
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    got = (random.random(), np.random.rand(), torch.rand(2))
    assert got[0] == expected[0] and got[1] == expected[1] and torch.equal(got[2], expected[2])
