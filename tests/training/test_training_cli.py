"""``workbench train`` end to end on the built-in synthetic set with a narrow HSTL; loading for inference."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from workbench.cli import main
from workbench.training import (
    CheckpointError,
    TrainConfig,
    list_checkpoints,
    load_checkpoint,
    load_for_inference,
)

CONFIG = """
iterations = 2
save_every = 1
eval_every = 2
device = "cpu"
output_dir = "{out}"

[data]
path = "synthetic"
p = 2
k = 2
frames = 4

[model]
tree = "casia-b-paper"
channels = [2, 2, 2]
fta = true

[optimizer]
lr = 1e-3
"""


@pytest.mark.slow
def test_train_command_trains_evaluates_resumes_and_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    config_path = tmp_path / "train.toml"
    config_path.write_text(CONFIG.format(out=out.as_posix()))

    assert main(["train", str(config_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "trained 2 iterations" in printed and "evaluation at step 2" in printed and "rank1" in printed
    assert (out / "data" / "partition.json").is_file()  # the synthetic set was rendered into the run
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-00000001.pt", "checkpoint-00000002.pt"]

    # Running again without --resume would silently mix two runs: refused with the fix in the message.
    assert main(["train", str(config_path), "--no-progress", "--no-eval"]) == 2
    assert "--resume" in capsys.readouterr().err

    assert main(["train", str(config_path), "--set", "iterations=3", "--resume", "--no-eval", "--no-progress"]) == 0
    last = list_checkpoints(out)[-1]
    assert last.name == "checkpoint-00000003.pt"

    model, config = load_for_inference(last, "cpu")
    assert isinstance(config, TrainConfig) and config.iterations == 3 and config.model.channels == (2, 2, 2)
    assert not model.training
    stored = load_checkpoint(last)["model"]
    for key, value in model.state_dict().items():
        assert torch.equal(value, stored[key]), key
    with torch.no_grad():
        features = model(torch.rand(1, 5, 64, 44)).inference
    assert features.shape[0] == 1 and torch.isfinite(features).all()


def test_train_command_reports_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_path = tmp_path / "train.toml"
    config_path.write_text("iterations = 1\n")
    assert main(["train", str(config_path), "--set", "data.batch=3"]) == 2
    err = capsys.readouterr().err
    assert "data.batch" in err and str(config_path) in err
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_load_for_inference_rejects_foreign_files(tmp_path: Path) -> None:
    torch.save({"model": {}}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="config"):
        load_for_inference(tmp_path / "bare.pt")


def _torchrun(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "workbench", "train", *args, "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.slow
def test_train_command_under_torchrun_trains_once_exits_cleanly_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    config_path = tmp_path / "train.toml"
    config_path.write_text(CONFIG.format(out=out.as_posix()))

    # Both ranks must exit 0 after training (a rank aborting at exit fails the whole torchrun job).
    first = _torchrun(str(config_path))
    assert first.returncode == 0, first.stderr[-3000:]
    assert first.stdout.count("trained 2 iterations") == 1 and first.stdout.count("evaluation at step 2") == 1
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-00000001.pt", "checkpoint-00000002.pt"]
    state = load_checkpoint(list_checkpoints(out)[-1])
    assert state["sampler"]["world_size"] == 2 and len(state["rng"]) == 2  # each rank's RNG, to resume it

    again = _torchrun(str(config_path), "--set", "iterations=3", "--resume", "--no-eval")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trained 3 iterations" in again.stdout
    assert list_checkpoints(out)[-1].name == "checkpoint-00000003.pt"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_train_command_starts_its_own_ranks_with_nproc_per_node(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ranks"
    config_path = tmp_path / "train.toml"
    config_path.write_text("nproc_per_node = 2\n" + CONFIG.format(out=out.as_posix()))

    assert main(["train", str(config_path), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("trained 2 iterations") == 1 and printed.count("evaluation at step 2") == 1
    state = load_checkpoint(list_checkpoints(out)[-1])
    assert state["sampler"]["world_size"] == 2 and len(state["rng"]) == 2

    # A rank's error ends the command with that error, and no rank is left behind.
    assert main(["train", str(config_path), "--no-progress", "--no-eval"]) == 1
    assert "CheckpointError" in capsys.readouterr().err
    import multiprocessing

    assert not multiprocessing.active_children()


@pytest.mark.slow
def test_train_command_evaluates_in_the_training_precision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import workbench.evaluation._embed as embed

    used: list[str] = []
    real = embed.autocast

    def recording(device: object, amp: str) -> object:
        used.append(amp)
        return real(device, amp)  # type: ignore[arg-type]

    monkeypatch.setattr(embed, "autocast", recording)
    config_path = tmp_path / "train.toml"
    config_path.write_text(CONFIG.format(out=(tmp_path / "bf16").as_posix()))
    assert main(["train", str(config_path), "--set", 'amp="bf16"', "--no-progress"]) == 0
    assert "evaluation at step 2" in capsys.readouterr().out
    assert used == ["bf16"]
