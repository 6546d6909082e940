"""One exit-code convention for every command, and one-line errors for files the workbench refuses."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch

from workbench.cli import main

# The codes users and scripts rely on (README, "Commands"): 1 failed work, 2 bad usage or input, 130 interrupted.
EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 1, 2, 130


class _RunsCode:
    """Unpickling this calls ``print``: what a checkpoint with pickled code could do with any function."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return print, ("pickled code ran",)


def _bad_input_commands(tmp_path: Path) -> list[tuple[list[str], Path]]:
    """Commands given a file or folder that is missing or of the wrong kind, with the path they must name."""
    binary = tmp_path / "image.toml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    missing = tmp_path / "missing"
    return [
        (["train", str(tmp_path / "missing.toml")], tmp_path / "missing.toml"),
        (["train", str(binary)], binary),
        (["evaluate", str(tmp_path / "missing.pt"), "--data", str(tmp_path)], tmp_path / "missing.pt"),
        (["discover", "--data", str(missing), "--out", str(tmp_path / "t.json")], missing),
        (["dendrogram", str(tmp_path / "missing.json"), "--out", str(tmp_path / "d.png")], tmp_path / "missing.json"),
        (["data", "pack", str(missing), str(tmp_path / "packed")], missing),
        (["study", "run", str(tmp_path / "missing.toml")], tmp_path / "missing.toml"),
        (["compare", "--tracking-uri", f"sqlite:///{tmp_path / 'missing.db'}"], tmp_path / "missing.db"),
    ]


def test_bad_input_exits_2_from_every_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, path in _bad_input_commands(tmp_path):
        assert main(argv) == EXIT_USAGE, argv
        err = capsys.readouterr().err
        assert err.startswith("workbench: error: ") and err.count("\n") == 1, (argv, err)
        assert path.name in err and "Traceback" not in err, (argv, err)


def test_work_that_fails_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    import workbench.training
    from workbench.training import NonFiniteLossError

    class DivergingTrainer:
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def fit(self, resume: bool = False) -> None:
            raise NonFiniteLossError("non-finite loss (nan) at step 3; lower optimizer.lr")

    monkeypatch.setattr(workbench.training, "Trainer", DivergingTrainer)
    config = tmp_path / "train.toml"
    config.write_text(f'iterations = 4\noutput_dir = "{(tmp_path / "run").as_posix()}"\n')
    assert main(["train", str(config), "--no-eval", "--no-progress"]) == EXIT_FAILED
    assert "non-finite loss" in capsys.readouterr().err


def test_failed_io_exits_1_and_interruption_130(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    import workbench.hierarchy

    def disk_full(directory: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    def interrupted(directory: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(workbench.hierarchy, "list_trees", disk_full)
    assert main(["trees"]) == EXIT_FAILED
    assert "No space left on device" in capsys.readouterr().err
    monkeypatch.setattr(workbench.hierarchy, "list_trees", interrupted)
    assert main(["trees"]) == EXIT_INTERRUPTED
    assert capsys.readouterr().err == "workbench: interrupted\n"


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_a_checkpoint_with_pickled_code_is_refused_in_one_line(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = tmp_path / "shared.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "config": {}, "num_classes": 2, "extra": _RunsCode()}, checkpoint)
    argv = {"evaluate": ["evaluate", str(checkpoint), "--data", str(tmp_path), "--device", "cpu"],
            "export": ["export", "--checkpoint", str(checkpoint), "--out", str(tmp_path / "out")]}[command]
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert "pickled code ran" not in out
    assert err.startswith(f"workbench: error: {checkpoint}: refused: it holds pickled Python code or objects (print)")
    assert "will not unpickle" in err and "workbench train" in err and "state_dict" in err
    # torch's own advice (load with weights_only=False, or allowlist the global) is not passed on.
    assert "weights_only" not in err and "safe_globals" not in err and "Traceback" not in err
    assert err.count("\n") == 1


def test_a_file_that_is_no_checkpoint_is_named_without_torch_advice(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "photo.pt"
    image.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    assert main(["evaluate", str(image), "--data", str(tmp_path), "--device", "cpu"]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"workbench: error: {image}: not a PyTorch checkpoint")
    assert "weights_only" not in err and "Traceback" not in err and err.count("\n") == 1
