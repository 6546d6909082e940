"""``workbench data pretreat`` and ``workbench data pack`` end to end."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from workbench.cli import main
from workbench.data import OpenGaitDataset, PackedStore, pretreat_gif


def test_pretreat_then_pack_real_gifs(real_fixtures: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    for index, name in enumerate(("nm", "bg", "cl")):
        folder = raw / f"{index:03d}" / f"{name}-01"
        folder.mkdir(parents=True)
        shutil.copy(real_fixtures / f"{name}.gif", folder / "090.gif")
    assert main(["data", "pretreat", str(raw), str(tmp_path / "pkl"), "--size", "64", "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "sequences: 3 written of 3 found" in out and "170 written" in out
    assert main(["data", "pack", str(tmp_path / "pkl"), str(tmp_path / "store")]) == 0
    out = capsys.readouterr().out
    assert "packed 3 sequences, 170 frames of 64x64" in out and "checksum ok" in out
    store = PackedStore(tmp_path / "store")
    assert np.array_equal(store.load(0), pretreat_gif(real_fixtures / "nm.gif"))
    assert len(OpenGaitDataset(tmp_path / "pkl")) == 3


def test_pack_refuses_an_existing_destination(opengait_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "store").mkdir()
    assert main(["data", "pack", str(opengait_root), str(tmp_path / "store")]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["data", "pack", str(opengait_root), str(tmp_path / "store"), "--overwrite"]) == 0
    assert len(PackedStore(tmp_path / "store")) == 36


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "pack", str(tmp_path / "absent"), str(tmp_path / "store")]) == 2
    assert "absent: dataset not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["data", "pack", str(tmp_path / "empty"), str(tmp_path / "store")]) == 2
    assert "empty dataset: searched" in capsys.readouterr().err
    assert main(["data", "pretreat", str(tmp_path / "empty"), str(tmp_path / "out")]) == 2
    assert "no raw sequences found" in capsys.readouterr().err
    assert main(["data", "pretreat", str(tmp_path / "empty"), str(tmp_path / "out"), "--workers", "0"]) == 2
    assert "--workers 0" in capsys.readouterr().err
