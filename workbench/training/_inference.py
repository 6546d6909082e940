"""Rebuild a trained model from a checkpoint for evaluation."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn

from workbench.config import ConfigError, from_dict, load_config
from workbench.training._builders import build_model
from workbench.training._checkpoint import CheckpointError, load_checkpoint
from workbench.training._config import TrainConfig


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults, then the TOML/YAML file, then ``key=value`` overrides; unknown keys are errors."""
    return load_config(TrainConfig, path, overrides)


def load_for_inference(checkpoint: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, TrainConfig]:
    """The model of ``checkpoint`` (weights loaded, eval mode, on ``device``) and the config it trained with."""
    state = load_checkpoint(checkpoint, map_location="cpu")
    missing = [key for key in ("config", "num_classes") if key not in state]
    if missing:
        raise CheckpointError(f"{checkpoint}: no {' or '.join(map(repr, missing))} entry; it was not written by "
                              "workbench train (import OpenGait checkpoints with workbench.models instead)")
    try:
        config = from_dict(TrainConfig, state.get("config"), where=str(checkpoint))
    except ConfigError as exc:
        raise CheckpointError(f"{checkpoint}: stored config does not load ({exc})") from exc
    model = build_model(config.model, int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint}: weights do not fit model {config.model.name!r} ({exc})") from exc
    model.to(torch.device(device)).eval()
    return model, config
