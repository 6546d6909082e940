"""``workbench data synth`` end to end, and its error messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.data import load_pickle


def test_renders_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "synth"
    argv = ["data", "synth", "--out", str(out), "--subjects", "3", "--views", "0,90", "--types", "nm-01", "bg-01",
            "--frames", "6-8", "--seed", "4", "--workers", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "wrote 12 sequences" in printed and str(out) in printed
    frames = load_pickle(out / "003" / "bg-01" / "090" / "090.pkl")
    assert frames.shape[1:] == (64, 64) and 6 <= len(frames) <= 8
    assert json.loads((out / "partition.json").read_text())["TEST_SET"] == ["003"]
    truth = json.loads((out / "ground_truth.json").read_text())
    assert truth["metadata"]["config"]["seed"] == 4
    assert f"{sum(len(load_pickle(p)) for p in out.rglob('*.pkl'))} frames" in printed

    # A second run into the same folder is refused unless --overwrite is given.
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--size", "128", "--frames", "3"]) == 0
    assert load_pickle(out / "001" / "nm-01" / "000" / "000.pkl").shape == (3, 128, 128)


def test_tiny_preset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "synth", "--out", str(tmp_path / "t"), "--preset", "tiny", "--subjects", "2"]) == 0
    assert "wrote 24 sequences" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--types", "nm-01", "jog-01"], "unknown sequence type 'jog-01'"),
        (["--subjects", "0"], "--subjects: expected a whole number >= 1"),
        (["--size", "100"], "--size: 100 is not supported; use 64"),
        (["--views", "0", "ninety"], "--views: 'ninety' is not a whole number"),
        (["--views", "270"], "--views: 270"),
        (["--frames", "ten"], "--frames 'ten': expected MIN-MAX"),
        (["--frames", "9-3"], "--frames: expected"),
        (["--workers", "0"], "--workers 0"),
    ],
)
def test_bad_arguments_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "never"
    assert main(["data", "synth", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()
