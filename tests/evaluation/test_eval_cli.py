"""``workbench evaluate`` on a freshly trained checkpoint and ``workbench baseline``, on tiny synthetic data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.cli import main


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.data.synth import SynthConfig, render_dataset

    root = tmp_path_factory.mktemp("synth") / "tiny"
    config = SynthConfig.tiny(subjects=6, types=("nm-01", "nm-02", "nm-03", "bg-01", "cl-01"), frames=(8, 10))
    render_dataset(root, config)
    return root


@pytest.fixture(scope="module")
def checkpoint(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from workbench.training import DataConfig, ModelConfig, TrainConfig, Trainer

    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        data=DataConfig(path=str(tiny_data), p=2, k=2, frames=4),
        model=ModelConfig(name="hstl-small", channels=(4, 8, 8)),
        iterations=1,
        save_every=1,
        device="cpu",
        output_dir=str(out),
    )
    result = Trainer(config, progress=False).fit()
    assert result.checkpoint is not None
    return Path(result.checkpoint)


def test_evaluate_writes_table_summary_and_heatmap(
    checkpoint: Path, tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval"
    code = main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--protocol", "synthetic",
                 "--batch-size", "16", "--frames", "8", "--device", "cpu", "--out", str(out),
                 "--save-embeddings", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "synthetic: rank-1 (%)" in printed and "NM" in printed and "CL" in printed
    payload = json.loads((out / "summary.json").read_text())
    assert payload["protocol"] == "synthetic" and payload["model"] == "hstl-small"
    assert payload["sequences"] == 2 * 5 * 3  # two test subjects x 5 types x 3 views
    figures = {"rank1", "rank1_nm", "rank1_bg", "rank1_cl", "rank1_mean"}
    assert set(payload["summary"]) == figures | {f"{k}_ci_{end}" for k in figures for end in ("low", "high")}
    assert payload["n_subjects"] == 2 and "bootstrap over 2 test subjects" in printed
    assert all(0.0 <= v <= 100.0 for v in payload["summary"].values())
    assert (out / "rank1_views.png").stat().st_size > 1000
    assert (out / "embeddings.npz").is_file()


def test_evaluate_under_bf16_autocast(checkpoint: Path, tiny_data: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bf16"
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--device", "cpu", "--amp", "bf16",
                 "--out", str(out), "--no-progress"]) == 0
    assert "synthetic: rank-1 (%)" in capsys.readouterr().out
    payload = json.loads((out / "summary.json").read_text())
    assert payload["amp"] == "bf16" and all(0.0 <= v <= 100.0 for v in payload["summary"].values())
    # fp16 autocast exists on CUDA only: refused up front, with the way out.
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--device", "cpu", "--amp", "fp16"]) == 2
    err = capsys.readouterr().err
    assert "--amp fp16" in err and "amp='bf16'" in err


def test_evaluate_reports_user_errors(checkpoint: Path, tiny_data: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate", str(tmp_path / "missing.pt"), "--data", str(tiny_data)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert main(["evaluate", str(checkpoint), "--data", str(tmp_path / "nowhere")]) == 2
    assert "--data" in capsys.readouterr().err
    # The tiny set has no PROBE_SET: gait3d must say so instead of failing somewhere deep.
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--protocol", "gait3d",
                 "--no-progress"]) == 2
    assert "PROBE_SET" in capsys.readouterr().err


def test_baseline_prints_conditions(tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["baseline", "--data", str(tiny_data), "--components", "8", "--out", str(tmp_path / "b"),
                 "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("GEI + PCA baseline: 8 components")
    for condition in ("NM", "BG", "CL"):
        assert f"{condition}: probe view (rows)" in printed
    payload = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert payload["baseline"] == "gei-pca" and payload["components"] == 8


def test_baseline_rejects_bad_components(tiny_data: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["baseline", "--data", str(tiny_data), "--components", "0"]) == 2
    assert "--components must be >= 1" in capsys.readouterr().err


def test_command_line_choices_are_the_library_registries() -> None:
    from workbench.cli._choices import AMP, PROTOCOLS
    from workbench.evaluation import list_protocols
    from workbench.models import AMP_CHOICES

    assert tuple(AMP) == AMP_CHOICES and list(PROTOCOLS) == list_protocols()


def test_evaluate_checks_its_output_before_any_inference(checkpoint: Path, tiny_data: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import workbench.evaluation as evaluation

    def no_inference(*args: object, **kwargs: object) -> None:
        raise AssertionError("the evaluation ran before its output was checked")

    monkeypatch.setattr(evaluation, "evaluate_model", no_inference)
    (tmp_path / "file").write_text("x")
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in capsys.readouterr().err
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "summary.json").write_text("{}")
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--out", str(tmp_path / "done")]) == 2
    assert "already holds an evaluation" in capsys.readouterr().err
    assert (tmp_path / "done" / "summary.json").read_text() == "{}"
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--save-embeddings"]) == 2
    assert "--save-embeddings needs --out" in capsys.readouterr().err


def test_evaluate_reads_a_public_hstl_checkpoint_directly(checkpoint: Path, tiny_data: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np
    import torch

    from workbench.models import HSTL, HSTLSpec, export_opengait

    torch.manual_seed(0)
    public, _ = export_opengait(HSTL(HSTLSpec.from_splits([[40, 24], [8, 32, 16, 8]], channels=(4, 8, 16))),
                                tmp_path / "HSTL-00010.pt", iteration=10)
    args = ["--data", str(tiny_data), "--device", "cpu", "--frames", "8", "--no-progress", "--save-embeddings"]
    assert main(["evaluate", str(public), *args, "--out", str(tmp_path / "direct")]) == 0
    captured = capsys.readouterr()
    assert "workbench: warning:" in captured.err and "'casia-b-paper'" in captured.err and "--tree" in captured.err
    assert "synthetic: rank-1 (%)" in captured.out

    # The same embeddings as the imported checkpoint's; a chosen tree is taken without a warning.
    assert main(["import", str(public), "--out", str(tmp_path / "imported")]) == 0
    imported = tmp_path / "imported" / "checkpoint-00000010.pt"
    assert main(["evaluate", str(imported), *args, "--out", str(tmp_path / "via-import")]) == 0
    capsys.readouterr()
    direct = np.load(tmp_path / "direct" / "embeddings.npz")["embeddings"]
    np.testing.assert_array_equal(direct, np.load(tmp_path / "via-import" / "embeddings.npz")["embeddings"])
    assert main(["evaluate", str(public), *args[:-1], "--tree", "uniform-64"]) == 0
    assert "warning" not in capsys.readouterr().err

    # --tree belongs to public checkpoints; a workbench checkpoint records its own network.
    assert main(["evaluate", str(checkpoint), "--data", str(tiny_data), "--tree", "uniform-64"]) != 0
    err = capsys.readouterr().err
    assert str(checkpoint) in err and "drop the tree" in err and "Traceback" not in err
