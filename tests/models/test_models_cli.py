"""``workbench models list/show`` and ``workbench export``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from workbench.cli import main
from workbench.models import load_opengait_checkpoint


def test_models_list_reports_parts_and_parameters(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["hstl-casia-b"]["parameters"] == 4_745_834
    assert rows["hstl-casia-b"]["parts"] == 73
    assert rows["hstl-oumvlp"]["parameters"] == 89_103_603
    assert main(["models", "list"]) == 0
    assert "hstl-gait3d" in capsys.readouterr().out


def test_models_show_applies_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "show", "hstl-small", "--set", "num_classes=9"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["spec"]["num_classes"] == 9
    assert shown["split_lists"]["stage3"] == [8, 32, 16, 8]


def test_export_a_registered_model_then_import_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["export", "--model", "hstl-small", "--set", "num_classes=5", "--out", str(tmp_path), "--iteration", "7"])
    assert code == 0
    ckpt, cfg = tmp_path / "HSTL-00007.pt", tmp_path / "HSTL.yaml"
    assert ckpt.is_file() and cfg.is_file()
    assert yaml.safe_load(cfg.read_text())["model_cfg"]["class_num"] == 5
    model = load_opengait_checkpoint(ckpt, model_cfg=cfg)
    assert model.spec.num_classes == 5
    assert torch.load(ckpt, weights_only=True)["iteration"] == 7


def test_export_from_a_tree(tmp_path: Path) -> None:
    pytest.importorskip("workbench.hierarchy", reason="workbench.hierarchy is not available")
    code = main(["export", "--tree", "uniform-64", "--cuts", "2", "4", "--channels", "4", "6", "8",
                 "--out", str(tmp_path), "--name", "uniform"])
    assert code == 0
    stages = yaml.safe_load((tmp_path / "uniform.yaml").read_text())["model_cfg"]["stages"]
    assert [s["split_param"] for s in stages] == [[32, 32], [16, 16, 16, 16]]


def test_export_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--model", "hstl-nope", "--out", str(tmp_path)]) == 2
    assert "unknown model 'hstl-nope'" in capsys.readouterr().err
    assert main(["export", "--model", "hstl-small", "--cuts", "2", "--out", str(tmp_path)]) == 2
    assert "--cuts and --channels go with --tree" in capsys.readouterr().err
    assert main(["export", "--model", "hstl-small", "--set", "depth=3", "--out", str(tmp_path)]) == 2
    assert "depth" in capsys.readouterr().err


def test_export_refuses_to_replace_a_checkpoint_without_overwrite(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = ["export", "--model", "hstl-small", "--set", "num_classes=5", "--out", str(tmp_path)]
    assert main(args) == 0
    ckpt = tmp_path / "HSTL-00000.pt"
    trained = ckpt.read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "pass --overwrite" in capsys.readouterr().err
    assert ckpt.read_bytes() == trained
    assert main([*args, "--overwrite"]) == 0
