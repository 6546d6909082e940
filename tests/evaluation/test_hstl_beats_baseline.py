"""The example config behind docs/results.md (HSTL-small vs the GEI + PCA baseline) stays usable.

The comparison itself trains for minutes on the default synthetic set; its figures and commands are
in docs/results.md. Here the config must load, name the data and model the figures came from, and
build a model whose outputs have the documented shapes.
"""

from __future__ import annotations

from pathlib import Path

import torch

from workbench.training import load_train_config

REPO = Path(__file__).resolve().parents[2]
CPU_EXAMPLE = REPO / "docs" / "examples" / "train-synthetic-cpu.toml"


def test_cpu_example_config_loads_and_builds() -> None:
    config = load_train_config(CPU_EXAMPLE, [])
    assert config.device == "cpu" and config.model.name == "hstl-small"
    assert config.data.is_builtin and config.data.synthetic == "default"
    assert config.model.options == {"downsample_before": [0]}
    model = config.model.build(num_classes=30)
    out = model(torch.rand(2, 8, 64, 44))
    # casia-b-paper cut at (2, 4) regions: 1 + 2 + 2 + 4 ASTP parts plus 32 HPP rows after halving.
    assert out.embeddings.shape == (2, 32, 41)
    assert out.logits.shape == (2, 30, 41)


def test_cpu_example_accepts_a_rendered_dataset_path(tmp_path: Path) -> None:
    config = load_train_config(CPU_EXAMPLE, [f"data.path={tmp_path}", "output_dir=elsewhere"])
    assert config.data.path == str(tmp_path) and not config.data.is_builtin
    assert config.output_dir == "elsewhere"
