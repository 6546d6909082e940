"""TrainConfig: defaults, files, overrides, validation messages, the example config, model building."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.config import ConfigError, dump_config
from workbench.training import (
    DataConfig,
    ModelConfig,
    SchedulerConfig,
    TrainConfig,
    build_optimizer,
    build_scheduler,
    load_train_config,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "train-synthetic.toml"


def test_defaults_follow_the_casia_b_recipe() -> None:
    config = TrainConfig()
    assert (config.data.p, config.data.k, config.data.frames) == (8, 8, 30)
    assert config.data.sampler == "fixed_ordered"
    assert (config.optimizer.name, config.optimizer.lr, config.optimizer.weight_decay) == ("adam", 1e-4, 5e-4)
    assert config.loss.triplet_margin == 0.2 and config.loss.ce_scale == 1.0
    assert config.data.is_builtin and config.data.batch_size == 64


def test_file_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text('iterations = 50\n[data]\np = 4\n[optimizer]\nname = "sgd"\nlr = 0.1\n')
    config = load_train_config(path, ["optimizer.lr=0.05", "scheduler.milestones=[10, 20]", "amp='bf16'"])
    assert config.iterations == 50 and config.data.p == 4
    assert config.optimizer.name == "sgd" and config.optimizer.lr == 0.05
    assert config.scheduler.milestones == (10, 20) and config.amp == "bf16"


def test_yaml_config(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("iterations: 7\nmodel:\n  tree: uniform-64\n  cuts: [2, 4]\n")
    config = load_train_config(path)
    assert config.iterations == 7 and config.model.cuts == (2, 4) and config.model.from_tree


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.colour=1", "data.colour"),
        ("data.p=0", "data.p must be > 0"),
        ("optimizer.name='rmsprop'", "optimizer.name"),
        ("amp='fp8'", "amp"),
        ("scheduler.milestones=[20, 10]", "increasing"),
        ("iterations=0", "iterations must be > 0"),
        ("model.name='hstl-casia-b'", None),
    ],
)
def test_bad_values_name_the_field(tmp_path: Path, override: str, message: str | None) -> None:
    path = tmp_path / "train.toml"
    path.write_text("[model]\ntree = 'casia-b-paper'\n" if message is None else "")
    with pytest.raises(ConfigError, match=message or "hstl-small"):
        load_train_config(path, [override])
    if message is not None:
        with pytest.raises(ConfigError, match=str(path)):
            load_train_config(path, [override])


def test_dumped_config_loads_back_equal(tmp_path: Path) -> None:
    config = TrainConfig(data=DataConfig(partition="p.json", packed=True), model=ModelConfig(tree="uniform-64"),
                         scheduler=SchedulerConfig(milestones=(5,)), output_dir=str(tmp_path))
    dump_config(config, tmp_path / "config.toml")
    assert load_train_config(tmp_path / "config.toml") == config


def test_example_config_loads() -> None:
    if not EXAMPLE.is_file():
        pytest.skip(f"example config missing at {EXAMPLE}")
    config = load_train_config(EXAMPLE)
    assert config.data.is_builtin and config.model.tree == "casia-b-paper"


def test_build_model_from_registry_and_from_tree() -> None:
    registry = ModelConfig().build(num_classes=5)
    tree_built = ModelConfig(tree="uniform-64", cuts=(2, 4), channels=(2, 2, 4), fta=False).build(3)
    x = torch.rand(2, 4, 64, 44)
    with torch.no_grad():
        out = tree_built(x)
    assert out.logits.shape[:2] == (2, 3)
    assert out.embeddings.shape[1] == 4
    assert sum(p.numel() for p in tree_built.parameters()) < sum(p.numel() for p in registry.parameters())
    with pytest.raises(ValueError, match="num_classes"):
        ModelConfig().build(num_classes=0)


def test_optimizer_and_scheduler() -> None:
    params = [torch.nn.Parameter(torch.zeros(2))]
    from workbench.training import OptimizerConfig

    sgd = build_optimizer(params, OptimizerConfig(name="sgd", lr=0.1, momentum=0.9, weight_decay=5e-4))
    assert isinstance(sgd, torch.optim.SGD) and sgd.param_groups[0]["momentum"] == 0.9
    scheduler = build_scheduler(sgd, SchedulerConfig(milestones=(2, 4), gamma=0.1))
    lrs = []
    for _ in range(5):
        lrs.append(sgd.param_groups[0]["lr"])
        sgd.step()
        scheduler.step()
    assert lrs == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])
