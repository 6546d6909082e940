"""Write HSTL weights and an OpenGait-style ``model_cfg`` for the public HSTL/OpenGait code.

The workbench's module names are the public ones, so the state dict is written key for key;
:func:`workbench.models.spec_from_model_cfg` reads the ``model_cfg`` back.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from workbench.models.hstl._model import HSTL
from workbench.models.hstl._spec import HSTLSpec


def opengait_state_dict(model: HSTL) -> dict[str, torch.Tensor]:
    """The model's weights under the public key names (detached CPU tensors)."""
    return {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}


def opengait_channels(spec: HSTLSpec) -> list[int]:
    """OpenGait-style ``channels``: the stem width, then each stage's output width."""
    return [spec.stem_channels[-1], *(stage.channels[1] for stage in spec.stages)]


def opengait_model_cfg(spec: HSTLSpec) -> dict[str, Any]:
    """An OpenGait-style ``model_cfg`` for ``spec`` (``model: HSTL``, channels, class_num, split lists)."""
    return {
        "model": "HSTL",
        "channels": opengait_channels(spec),
        "class_num": spec.num_classes,
        "parts_num": spec.parts,
        "in_channels": spec.in_channels,
        "stem_channels": list(spec.stem_channels),
        "astp_channels": spec.astp_channels,
        "astp1": {"split_param": list(spec.first_split), "project": spec.first_project},
        "downsample_before": [f"arme{i + 2}" for i in spec.downsample_before],
        "stages": [
            {
                "name": f"arme{i + 2}",
                "channels": list(stage.channels),
                "split_param": list(stage.split),
                "fta": stage.fta,
                "project": stage.project,
            }
            for i, stage in enumerate(spec.stages)
        ],
        "bin_num": [spec.strips],
    }


def export_opengait(
    model: HSTL,
    checkpoint_path: str | Path,
    config_path: str | Path | None = None,
    *,
    iteration: int = 0,
    optimizer_state: Mapping[str, Any] | None = None,
    scheduler_state: Mapping[str, Any] | None = None,
) -> tuple[Path, Path | None]:
    """Write ``{'model', 'optimizer', 'scheduler', 'iteration'}`` with public key names, and a YAML model_cfg.

    Without an optimizer state the checkpoint's optimizer/scheduler entries are empty, so restore it
    in OpenGait with ``optimizer_reset: true`` and ``scheduler_reset: true``.
    """
    checkpoint_path = Path(checkpoint_path)
    checkpoint_path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": opengait_state_dict(model),
        "optimizer": dict(optimizer_state or {}),
        "scheduler": dict(scheduler_state or {}),
        "iteration": int(iteration),
    }
    torch.save(payload, checkpoint_path)
    if config_path is None:
        return checkpoint_path, None
    import yaml

    config_path = Path(config_path)
    config_path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump({"model_cfg": opengait_model_cfg(model.spec)}, sort_keys=False, default_flow_style=None)
    config_path.write_text(text)
    return checkpoint_path, config_path
