"""Rebuild a trained model from a checkpoint for evaluation; import public checkpoints of other code bases."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from workbench.config import ConfigError, from_dict, load_config, to_dict
from workbench.models import resolve_device
from workbench.training._checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointError,
    check_checkpoint,
    read_checkpoint,
)
from workbench.training._config import ModelConfig, TrainConfig

if TYPE_CHECKING:
    from workbench.hierarchy import PartitionTree
    from workbench.models import ImportedWeights


def load_train_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Defaults, then the TOML/YAML file, then ``key=value`` overrides; unknown keys are errors."""
    return load_config(TrainConfig, path, overrides)


def _is_workbench(state: Mapping[str, Any]) -> bool:
    return "config" in state and "num_classes" in state


def load_for_inference(
    checkpoint: str | Path, device: str | torch.device = "auto", *, tree: PartitionTree | str | Path | None = None
) -> tuple[nn.Module, TrainConfig]:
    """The model of ``checkpoint`` (weights loaded, eval mode, on ``device``: ``auto`` is CUDA when present)
    and the config it trained with.

    ``checkpoint`` is one written by ``workbench train`` / ``workbench import``, or a public checkpoint
    of a family with an importer (HSTL's), imported on the way (:func:`import_opengait`); ``tree``
    chooses the latter's split heights.
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
    model.to(resolve_device(device)).eval()
    return model, config


def import_opengait(
    source: str | Path | Mapping[str, Any],
    *,
    tree: PartitionTree | str | Path | None = None,
    where: str | None = None,
) -> dict[str, Any]:
    """A workbench checkpoint (what ``workbench train`` saves, without optimizer state) of a public checkpoint.

    ``source`` is a file or a loaded checkpoint (``{'model': state_dict, ...}`` or a bare state dict) of a
    model family with an importer (``ModelFamily.import_weights``: the public HSTL code's). The split
    heights come from ``tree`` (a ``PartitionTree``, preset name or tree JSON file), else from the one
    matching paper tree, with a ``GuessedSplitsWarning`` (see ``workbench.models.resolve_tree``).
    """
    from workbench.models import SpecError, get_family, list_families

    where = where or (str(source) if isinstance(source, (str, Path)) else "checkpoint")
    loaded = read_checkpoint(source) if isinstance(source, (str, Path)) else source
    if _is_workbench(loaded):
        raise CheckpointError(f"{where}: already a workbench checkpoint; pass it to `workbench evaluate` or a study as it is")
    families = [get_family(name) for name in list_families()]
    importers = [(family, family.import_weights) for family in families if family.import_weights is not None]
    imported = None
    try:
        for _, import_weights in importers:
            imported = import_weights(loaded, tree, where)
            if imported is not None:
                break
    except (SpecError, FileNotFoundError, RuntimeError) as exc:
        raise CheckpointError(str(exc)) from exc
    if imported is None:
        inner = loaded.get("model")
        keys = [str(k) for k in (inner if isinstance(inner, Mapping) else loaded)][:3]
        hints = " nor ".join(family.import_hint or f"a public {family.name} checkpoint" for family, _ in importers)
        raise CheckpointError(
            f"{where}: neither a workbench checkpoint (no 'config' entry) nor {hints or 'a public checkpoint'} (it "
            f"holds {keys or 'nothing'}); pass a checkpoint written by `workbench train` or `workbench import`, or "
            f"one of the public {' or '.join(family.name.upper() for family, _ in importers)} code"
        )
    spec: Any = imported.model.spec
    iteration = loaded.get("iteration")
    return {
        "format": CHECKPOINT_FORMAT,
        "model": imported.model.state_dict(),
        "iteration": iteration if isinstance(iteration, int) and iteration >= 0 else 0,
        "config": to_dict(TrainConfig(model=_model_config(imported, where))),
        "num_classes": spec.num_classes,
        "imported": {
            "source": where,
            "format": "opengait",
            "tree": imported.tree.name,
            "tree_id": imported.tree.tree_id,
            "tree_guessed": tree is None,
            "splits": spec.split_lists(),
        },
    }


def _builds(config: ModelConfig, spec: Any) -> bool:
    from workbench.models import SpecError

    try:
        # Meta tensors: the shapes without the weights, so checking a large network costs nothing.
        with torch.device("meta"):
            built = config.build(spec.num_classes)
    except (SpecError, ValueError, TypeError):
        return False
    return getattr(built, "spec", None) == spec


def _model_config(imported: ImportedWeights, where: str) -> ModelConfig:
    """The first of the family's proposed configs that rebuilds the imported network's spec."""
    spec: Any = imported.model.spec
    for rebuild in imported.rebuilds:
        cut = rebuild.tree_cut
        options = dict(rebuild.options)
        if cut is None:
            config = ModelConfig(name=rebuild.model, options=options)
        else:
            config = ModelConfig(name=rebuild.model, tree=cut.tree, cuts=cut.cuts, channels=cut.channels,
                                 fta=cut.fta, options=options)
        if _builds(config, spec):
            return config
    raise CheckpointError(f"{where}: no workbench model config rebuilds this network ({spec.split_lists()})")
