"""Rebuild a trained model from a checkpoint for evaluation; import public HSTL checkpoints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from workbench.config import ConfigError, from_dict, load_config, to_dict
from workbench.training._checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_checkpoint,
    read_checkpoint,
)
from workbench.training._config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from workbench.hierarchy import PartitionTree
    from workbench.models import HSTLSpec

# An imported network that no tree-built config describes is stored as this registered HSTL with every
# spec field overridden, so the checkpoint rebuilds it without any tree file.
_SPEC_CARRIER = "hstl-casia-b"


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults, then the TOML/YAML file, then ``key=value`` overrides; unknown keys are errors."""
    return load_config(TrainConfig, path, overrides)


def _is_workbench(state: Mapping[str, Any]) -> bool:
    return "config" in state and "num_classes" in state


def load_for_inference(
    checkpoint: str | Path, device: str | torch.device = "cpu", *, tree: PartitionTree | str | Path | None = None
) -> tuple[nn.Module, TrainConfig]:
    """The model of ``checkpoint`` (weights loaded, eval mode, on ``device``) and the config it trained with.

    ``checkpoint`` is one written by ``workbench train`` / ``workbench import``, or a public HSTL
    checkpoint, imported on the way (:func:`import_opengait`); ``tree`` chooses the latter's split heights.
    """
    state = read_checkpoint(checkpoint)
    if _is_workbench(state):
        if tree is not None:
            raise CheckpointError(f"{checkpoint}: a workbench checkpoint records its own network; drop the tree (--tree)")
        check_checkpoint(state, checkpoint)
    else:
        state = import_opengait(state, tree=tree, where=str(checkpoint))
    try:
        config = from_dict(TrainConfig, state.get("config"), where=str(checkpoint))
    except ConfigError as exc:
        raise CheckpointError(f"{checkpoint}: stored config does not load ({exc})") from exc
    model = config.model.build(int(state["num_classes"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{checkpoint}: weights do not fit model {config.model.name!r} ({exc})") from exc
    model.to(torch.device(device)).eval()
    return model, config


def import_opengait(
    source: str | Path | Mapping[str, Any],
    *,
    tree: PartitionTree | str | Path | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """A workbench checkpoint (what ``workbench train`` saves, without optimizer state) of a public HSTL checkpoint.

    ``source`` is a file or a loaded checkpoint (``{'model': state_dict, ...}`` or a bare state dict).
    The split heights come from ``tree`` (a ``PartitionTree``, preset name or tree JSON file), else from
    the one matching paper tree, with a ``GuessedSplitsWarning`` (see ``workbench.models.resolve_tree``).
    """
    from workbench.models import HSTL, SpecError, hstl_weights, resolve_tree, spec_from_state_dict

    where = where or (str(source) if isinstance(source, (str, Path)) else "checkpoint")
    loaded = read_checkpoint(source) if isinstance(source, (str, Path)) else source
    if _is_workbench(loaded):
        raise CheckpointError(f"{where}: already a workbench checkpoint; pass it to `workbench evaluate` or a study as it is")
    weights = hstl_weights(loaded)
    if weights is None:
        inner = loaded.get("model")
        keys = [str(k) for k in (inner if isinstance(inner, Mapping) else loaded)][:3]
        raise CheckpointError(
            f"{where}: neither a workbench checkpoint (no 'config' entry) nor a public HSTL checkpoint (no "
            f"'arme1.<i>.conv3d.weight' and 'Head0.fc_bin' weights; it holds {keys or 'nothing'}); pass a checkpoint "
            "written by `workbench train` or `workbench import`, or one of the public HSTL code"
        )
    try:
        chosen = resolve_tree(weights, tree, where=where)
        model = HSTL(spec_from_state_dict(weights, tree=chosen, where=where))
        model.load_state_dict(weights)
    except (SpecError, FileNotFoundError, RuntimeError) as exc:
        raise CheckpointError(str(exc)) from exc
    spec = model.spec
    iteration = loaded.get("iteration")
    return {
        "format": CHECKPOINT_FORMAT,
        "model": model.state_dict(),
        "iteration": iteration if isinstance(iteration, int) and iteration >= 0 else 0,
        "config": to_dict(TrainConfig(model=_model_config(spec, chosen, where))),
        "num_classes": spec.num_classes,
        "imported": {
            "source": where,
            "format": "opengait",
            "tree": chosen.name,
            "tree_id": chosen.tree_id,
            "tree_guessed": tree is None,
            "splits": spec.split_lists(),
        },
    }


def _builds(config: ModelConfig, spec: HSTLSpec) -> bool:
    from workbench.models import SpecError

    try:
        # Meta tensors: the shapes without the weights, so checking a large network costs nothing.
        with torch.device("meta"):
            built = config.build(spec.num_classes)
    except (SpecError, ValueError, TypeError):
        return False
    return getattr(built, "spec", None) == spec


def _model_config(spec: HSTLSpec, tree: PartitionTree, where: str) -> ModelConfig:
    """The model config that rebuilds ``spec``: tree-built when ``tree`` is a preset, else the spec itself."""
    from workbench.hierarchy import list_presets, preset_tree

    fta = [i for i, stage in enumerate(spec.stages) if stage.fta]
    if tree.name in list_presets() and tree == preset_tree(tree.name) and fta in ([], [0]):
        options: dict[str, Any] = {
            "input_height": spec.input_height,
            "stem_convs": len(spec.stem_channels),
            "downsample_before": list(spec.downsample_before),
            "astp_channels": spec.astp_channels,
            "project_last": spec.stages[-1].project,
            "hpp_rows": spec.hpp_rows,
        }
        defaults = {"input_height": tree.n_rows, "stem_convs": 1, "downsample_before": [],
                    "astp_channels": spec.stages[-1].channels[1], "project_last": False, "hpp_rows": None}
        config = ModelConfig(
            tree=tree.name,
            cuts=tuple(len(stage.split) for stage in spec.stages),
            channels=(spec.stem_channels[0], *(stage.channels[1] for stage in spec.stages)),
            fta=bool(fta),
            options={key: value for key, value in options.items() if value != defaults[key]},
        )
        if _builds(config, spec):
            return config
    overrides = spec.to_dict()
    overrides.pop("num_classes")
    config = ModelConfig(name=_SPEC_CARRIER, options=overrides)
    if not _builds(config, spec):
        raise CheckpointError(f"{where}: no workbench model config rebuilds this network ({spec.split_lists()})")
    return config
