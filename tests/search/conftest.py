"""Shared fixtures for study tests: the smallest study data set, rendered once, and a study-file writer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from workbench.search import SYNTHETIC_SETS


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``small`` study set (``SYNTHETIC_SETS``), rendered once per test session."""
    from workbench.data.synth import SynthConfig, render_dataset

    out = tmp_path_factory.mktemp("synthetic") / "small"
    render_dataset(out, SynthConfig.default(seed=0, **SYNTHETIC_SETS["small"]), progress=False)
    return out


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One MLflow SQLite store for the session (creating MLflow's tables costs seconds per store)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


StudyWriter = Callable[..., Path]


@pytest.fixture
def write_study(tmp_path: Path, tiny_data: Path, tracking_uri: str) -> StudyWriter:
    """Write a small study TOML over the tiny set; keyword arguments replace whole lines."""

    def write(name: str = "tiny", trials: int = 2, iterations: int = 4, objectives: str = "",
              extra: str = "", storage: str = "", presets: str = '["casia-b-paper", "uniform-64"]',
              models: str = "[]") -> Path:
        objectives = objectives or '[[objectives]]\nmetric = "rank1"\ndirection = "maximize"\n'
        text = f"""
[study]
name = "{name}"
project_dir = "{tmp_path / 'home'}"
[data]
source = "{tiny_data}"
eval_batch_size = 32
[hierarchies]
presets = {presets}
[space]
models = {models}
stage_cuts = [[2], [4]]
channels = [[4, 4, 8]]
lr = [1e-3, 1e-3]
frames = [8]
fta = [true, false]
{objectives}
[budget]
trials = {trials}
iterations = {iterations}
eval_every = 2
[sampler]
name = "random"
[storage]
url = "{storage}"
heartbeat_seconds = 0.5
grace_seconds = 30
[tracking]
uri = "{tracking_uri}"
experiment = "{name}-{tmp_path.name}"
{extra}
[train]
save_every = 1
log_every = 1
[train.data]
p = 2
k = 2
"""
        path = tmp_path / f"{name}.toml"
        path.write_text(text)
        return path

    return write
