"""Parameter counts, total and per top-level child module."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from torch import nn


@dataclasses.dataclass(frozen=True)
class ParameterCount:
    """Parameter counts of a model; shared tensors are counted once.

    ``by_module`` maps each top-level child (``backbone``, ``Head0`` ...) to its count; parameters
    registered directly on the root appear under ``"_root"``.
    """

    total: int
    trainable: int
    by_module: Mapping[str, int]


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count the parameters of ``model`` (works on meta-device models too: only shapes are read)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"count_parameters expects a torch.nn.Module, got {type(model).__name__}")
    # named_parameters() already drops tied duplicates; a child that reuses another child's
    # tensor is charged to whichever child registered it first, so the parts still sum to the total.
    owner: dict[str, int] = {}
    total = trainable = 0
    for name, param in model.named_parameters():
        n = param.numel()
        total += n
        if param.requires_grad:
            trainable += n
        child = name.split(".", 1)[0] if "." in name else "_root"
        owner[child] = owner.get(child, 0) + n
    ordered = {name: owner[name] for name, _ in model.named_children() if name in owner}
    if "_root" in owner:
        ordered["_root"] = owner["_root"]
    return ParameterCount(total=total, trainable=trainable, by_module=ordered)
