"""What a trained model sees: one sequence's feature maps, as NumPy, for discovery from activations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from workbench.models._family import GaitModel


def feature_map_reader(model: nn.Module, stage: int = 1,
                       device: str | torch.device = "cpu") -> Callable[[np.ndarray], np.ndarray]:
    """A function from one sequence ``[s, h, w]`` (uint8 0..255 or float 0..1) to ``model``'s feature map
    after ``stage`` (``GaitModel.feature_maps``), ``float32 [c, s', h', w']``; evaluation mode, no gradients.

    Example: ``discover_tree(data, descriptor="activation-stats", transform=feature_map_reader(model))``.
    """
    if not isinstance(model, GaitModel):
        raise TypeError(f"{type(model).__name__} is not a gait model (workbench.models.GaitModel)")
    model.eval().to(device)
    model.feature_maps(torch.zeros(1, 3, *_input_size(model), device=device), stage=stage)  # a bad stage fails now

    def read(sequence: np.ndarray) -> np.ndarray:
        x = np.asarray(sequence)
        if x.ndim != 3:
            raise ValueError(f"expected one sequence [frames, h, w], got shape {list(x.shape)}")
        frames = torch.from_numpy(x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32))
        with torch.no_grad():
            maps = model.feature_maps(frames.unsqueeze(0).to(device), stage=stage)
        return maps[0].float().cpu().numpy()

    return read


def _input_size(model: nn.Module) -> tuple[int, int]:
    spec = getattr(model, "spec", None)
    height = int(getattr(spec, "input_height", 64))
    return height, max(8, height * 11 // 16)
