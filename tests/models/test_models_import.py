"""Public HSTL checkpoints of any width: the split tree resolved or chosen, and ``workbench import``."""

from __future__ import annotations

import collections
import os
import warnings
from pathlib import Path

import pytest
import torch
from test_models_opengait_io import randomised

from workbench.cli import main
from workbench.hierarchy import PartitionTree, save_tree
from workbench.models import (
    HSTL,
    GuessedSplitsWarning,
    HSTLSpec,
    SpecError,
    load_opengait_checkpoint,
    opengait_state_dict,
)
from workbench.training import latest_checkpoint, list_checkpoints, load_for_inference

CASIA_SPLITS = ((40, 24), (8, 32, 16, 8))


def public_model(splits=CASIA_SPLITS, channels=(4, 8, 16), num_classes=5) -> HSTL:
    """A narrow HSTL with every weight and the BN statistics perturbed, so a wrong mapping cannot pass."""
    torch.manual_seed(0)
    return randomised(HSTL(HSTLSpec.from_splits(splits, channels=channels, num_classes=num_classes)))


def save_public(model: HSTL, path: Path, iteration: int = 42) -> Path:
    """OpenGait's checkpoint layout, DataParallel prefix and the scheduler's Counter of milestones included."""
    state = {f"module.{key}": value for key, value in opengait_state_dict(model).items()}
    scheduler = {"milestones": collections.Counter([70000]), "gamma": 0.1, "last_epoch": iteration}
    torch.save({"model": state, "optimizer": {}, "scheduler": scheduler, "iteration": iteration}, path)
    return path


def one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.startswith("workbench: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_non_preset_widths_take_the_one_matching_paper_tree_with_a_warning(tmp_path: Path) -> None:
    source = public_model()
    path = save_public(source, tmp_path / "HSTL-00042.pt")
    with pytest.warns(GuessedSplitsWarning, match=r"not stored.*'casia-b-paper'.*--tree"):
        loaded = load_opengait_checkpoint(path)
    assert loaded.spec == source.spec
    x = torch.rand(2, 5, 64, 12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x).inference, source(x).inference, atol=1e-6, rtol=1e-6)


def test_no_or_several_matching_trees_ask_for_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    one_stage = save_public(public_model(splits=((20, 24, 20),), channels=(4, 8)), tmp_path / "one.pt")
    with pytest.raises(SpecError, match=r"\[3\] and 71 parts match no preset tree \(casia-b-paper.*--tree"):
        load_opengait_checkpoint(one_stage)
    import workbench.models.hstl._opengait_io as opengait_io

    monkeypatch.setattr(opengait_io, "PAPER_TREES", (*opengait_io.PAPER_TREES, "uniform-64"))
    casia = save_public(public_model(), tmp_path / "casia.pt")
    with pytest.raises(SpecError, match=r"match several preset trees \(casia-b-paper.*; uniform-64.*--tree"):
        load_opengait_checkpoint(casia)


def test_an_explicit_tree_is_used_and_one_that_does_not_fit_names_the_difference(tmp_path: Path) -> None:
    path = save_public(public_model(), tmp_path / "casia.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GuessedSplitsWarning)
        loaded = load_opengait_checkpoint(path, tree="uniform-64")
    assert loaded.spec.split_lists()["stage3"] == [16, 16, 16, 16]
    tiny = PartitionTree.from_levels(3, [[3], [1, 2], [1, 1, 1]], name="tiny")
    with pytest.raises(SpecError, match=r"tree 'tiny' \(3 rows\) does not fit .*regions per stage \[2, 4\]"):
        load_opengait_checkpoint(path, tree=tiny)


def test_import_writes_a_workbench_checkpoint_with_the_public_embeddings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = public_model()
    path = save_public(source, tmp_path / "HSTL-00042.pt")
    out = tmp_path / "imported"
    assert main(["import", str(path), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert "workbench: warning:" in captured.err and "'casia-b-paper'" in captured.err and "--tree" in captured.err
    assert "checkpoint-00000042.pt" in captured.out
    checkpoint = latest_checkpoint(out)
    assert checkpoint is not None and checkpoint.name == "checkpoint-00000042.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("error", GuessedSplitsWarning)  # the imported file records its tree
        model, config = load_for_inference(checkpoint)
    assert config.model.tree == "casia-b-paper" and config.model.channels == (4, 8, 16)
    x = torch.rand(3, 6, 64, 12)
    seq_lengths = torch.tensor([6, 4, 5])
    with torch.no_grad():
        torch.testing.assert_close(model(x, seq_lengths).inference, source(x, seq_lengths).inference,
                                   atol=1e-6, rtol=1e-6)

    # An existing checkpoint is replaced only on request; then the folder holds the new import alone.
    assert main(["import", str(path), "--out", str(out), "--tree", "uniform-64"]) != 0
    assert "--overwrite" in one_line_error(capsys)
    (out / "checkpoint-00000099.pt").write_bytes(checkpoint.read_bytes())
    assert main(["import", str(path), "--out", str(out), "--tree", "uniform-64", "--overwrite"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-00000042.pt"]
    model, _ = load_for_inference(out / "checkpoint-00000042.pt")
    assert model.spec.split_lists()["stage2"] == [32, 32]


def test_import_refuses_bad_input_in_one_line_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = str(tmp_path / "out")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert main(["import", str(text), "--out", out]) != 0
    assert f"{text}: not a PyTorch checkpoint" in one_line_error(capsys)

    other = tmp_path / "gaitbase.pt"
    torch.save({"model": {"Backbone.conv1.weight": torch.zeros(2)}}, other)
    assert main(["import", str(other), "--out", out]) != 0
    err = one_line_error(capsys)
    assert f"{other}: neither a workbench checkpoint" in err and "public HSTL" in err

    marker = tmp_path / "pwned"

    class Hostile:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    hostile = tmp_path / "hostile.pt"
    torch.save({"model": Hostile()}, hostile)
    assert main(["import", str(hostile), "--out", out]) != 0
    assert f"{hostile}: refused" in one_line_error(capsys)
    assert not marker.exists()

    public = save_public(public_model(), tmp_path / "casia.pt")
    small_tree = tmp_path / "tiny.json"
    save_tree(PartitionTree.from_levels(3, [[3], [1, 2], [1, 1, 1]], name="tiny"), small_tree)
    assert main(["import", str(public), "--tree", str(small_tree), "--out", out]) != 0
    err = one_line_error(capsys)
    assert f"{public}: tree 'tiny' (3 rows) does not fit" in err and "another --tree" in err

    assert main(["import", str(public), "--out", out]) == 0
    capsys.readouterr()
    imported = latest_checkpoint(out)
    assert main(["import", str(imported), "--out", str(tmp_path / "again")]) != 0
    assert "already a workbench checkpoint" in one_line_error(capsys)

    # A bad --tree or an occupied --out is reported before the checkpoint is read.
    import workbench.training

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the checkpoint was read before the options were checked")

    monkeypatch.setattr(workbench.training, "import_opengait", no_reading)
    assert main(["import", str(public), "--tree", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o2")]) != 0
    assert "--tree" in one_line_error(capsys)
    assert main(["import", str(public), "--out", out]) != 0
    assert "--overwrite" in one_line_error(capsys)
    assert main(["import", str(tmp_path / "missing.pt"), "--out", out]) != 0
    assert "checkpoint not found" in one_line_error(capsys)
