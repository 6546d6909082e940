"""What a trained model sees: one sequence's feature maps, as NumPy, for discovery from activations.

A family opts in by giving its network two methods (``FeatureMapModel``): ``feature_maps(x, seqL, stage)``,
the whole-height map after convolution stage ``stage`` (1: the first) as ``[n, c, s, h', w']``, and
``feature_map_regions(stage)``, the row regions that map is computed in, each on its own (one region:
the whole height). A map computed per region carries the model's own boundaries, which a tree read
from it echoes. HSTL has both.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from workbench.models._device import resolve_device
from workbench.models._family import GaitModel


@runtime_checkable
class FeatureMapModel(Protocol):
    """A gait network that shows its feature maps stage by stage."""

    def feature_maps(self, x: torch.Tensor, seqL: torch.Tensor | None = None, stage: int = 1) -> torch.Tensor: ...

    def feature_map_regions(self, stage: int = 1) -> list[int]: ...


class FeatureMapReader:
    """``reader(sequence [s, h, w])`` -> the model's map after ``stage``, ``float32 [c, s', h', w']``;
    ``regions`` are the row regions that map is computed in."""

    def __init__(self, model: FeatureMapModel, stage: int, device: str | torch.device) -> None:
        self.model, self.stage, self.device = model, stage, device
        self.regions = model.feature_map_regions(stage)  # a stage the model does not have fails here

    def __call__(self, sequence: np.ndarray) -> np.ndarray:
        x = np.asarray(sequence)
        if x.ndim != 3:
            raise ValueError(f"expected one sequence [frames, h, w], got shape {list(x.shape)}")
        frames = torch.from_numpy(x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32))
        with torch.no_grad():
            maps = self.model.feature_maps(frames.unsqueeze(0).to(self.device), stage=self.stage)
        return maps[0].float().cpu().numpy()


def feature_map_reader(model: nn.Module, stage: int = 1, device: str | torch.device = "auto") -> FeatureMapReader:
    """A reader of ``model``'s feature maps after ``stage`` for one sequence ``[s, h, w]`` (uint8 0..255 or
    float 0..1), in evaluation mode, without gradients, on ``device`` (``auto``: CUDA when present).

    Example: ``discover_tree(data, descriptor="activation-stats", transform=feature_map_reader(model))``.
    """
    if not isinstance(model, GaitModel):
        raise TypeError(f"{type(model).__name__} is not a gait model (workbench.models.GaitModel)")
    if not isinstance(model, FeatureMapModel):
        raise NotImplementedError(f"{type(model).__name__} does not expose its feature maps; discovery from a "
                                  "model's activations needs a family that does (HSTL)")
    target = resolve_device(device)
    model.eval().to(target)
    return FeatureMapReader(model, stage, target)
