"""Forward FLOPs with ``torch.utils.flop_counter.FlopCounterMode`` on the meta device.

The model is built (or its tensors swapped) on the ``meta`` device and a meta tensor of the input
shape is run through it: every shape is propagated and every matmul/convolution is counted, but no
memory is allocated and no arithmetic happens, so even the 89 M-parameter OUMVLP model is counted
in well under a second.

Convention: one multiply-add is 2 FLOPs (as FlopCounterMode counts). Only matrix products,
convolutions and attention are counted; pooling (max, average, GeM), activations, normalisation,
softmax and other elementwise work are not, so the figure is a lower bound dominated, for HSTL, by
the 3D convolutions.

The first count in a process pays a one-time import of ``torch._dynamo`` (FlopCounterMode and
meta-device reference ops need it; about 3 s of CPU with torch 2.13); later counts of the CASIA-B
preset take about 0.5 s on 2 cores.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.func import functional_call
from torch.utils.flop_counter import FlopCounterMode

from workbench.cost._source import as_recipe
from workbench.cost._step import check_shape

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """Forward FLOPs (2 per multiply-add) of one input shape.

    ``by_module`` maps every module path (``arme2``, ``arme2.0`` ...) to the FLOPs spent inside it;
    ``by_operator`` maps each counted aten operator to its FLOPs. ``on_meta`` is False when the model
    could not run on the meta device and was counted on real (zero) CPU tensors instead.
    """

    total: int
    input_shape: tuple[int, ...]
    by_module: Mapping[str, int]
    by_operator: Mapping[str, int]
    on_meta: bool = True

    @property
    def gflops(self) -> float:
        """Total FLOPs in units of 1e9."""
        return self.total / 1e9

    def at_depth(self, depth: int = 1) -> dict[str, int]:
        """FLOPs per module path with exactly ``depth`` components (1: the top-level children)."""
        if depth < 1:
            raise ValueError(f"depth={depth}: expected 1 or more")
        return {name: flops for name, flops in self.by_module.items() if name.count(".") == depth - 1}


def count_flops(
    model_or_spec: Any,
    frames: int = 30,
    height: int = 64,
    width: int = 44,
    batch: int = 1,
    *,
    input_shape: Sequence[int] | None = None,
) -> FlopCount:
    """Forward FLOPs of a model, spec, registry name or :class:`ModelRecipe` on ``[batch, frames, height, width]``.

    ``input_shape`` replaces the HSTL-style shape for models with other inputs (e.g. ``[n, c, s, h, w]``).
    A live ``nn.Module`` is not modified: its parameters and buffers are swapped for meta tensors only
    for the counting call.
    """
    shape = check_shape(input_shape if input_shape is not None else (batch, frames, height, width))
    if isinstance(model_or_spec, nn.Module):
        return _count_module(model_or_spec, shape)
    recipe = as_recipe(model_or_spec)
    assert recipe is not None  # only an nn.Module has no recipe
    try:
        with torch.device("meta"):
            model = recipe.build()
        return _count(model, torch.empty(shape, device="meta"), shape, on_meta=True)
    except (NotImplementedError, RuntimeError) as exc:
        logger.warning(
            "%s does not run on the meta device (%s); counting FLOPs on real CPU tensors instead (slower)",
            recipe.label, _first_line(exc),
        )
    return _count(recipe.build(), torch.zeros(shape), shape, on_meta=False)


def _count_module(model: nn.Module, shape: tuple[int, ...]) -> FlopCount:
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    meta_tensors = {name: torch.empty_like(t, device="meta") for name, t in tensors.items()}
    try:
        return _count(model, torch.empty(shape, device="meta"), shape, on_meta=True, swap=meta_tensors)
    except (NotImplementedError, RuntimeError) as exc:
        logger.warning(
            "%s does not run on the meta device (%s); counting FLOPs on real tensors instead (slower)",
            type(model).__name__, _first_line(exc),
        )
    device = next((t.device for t in tensors.values() if t.device.type != "meta"), torch.device("cpu"))
    return _count(model, torch.zeros(shape, device=device), shape, on_meta=False)


def _count(
    model: nn.Module,
    x: torch.Tensor,
    shape: tuple[int, ...],
    *,
    on_meta: bool,
    swap: Mapping[str, torch.Tensor] | None = None,
) -> FlopCount:
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            if swap is None:
                model(x)
            else:
                functional_call(model, dict(swap), (x,))
    finally:
        model.train(was_training)
    counts = counter.get_flop_counts()
    by_operator: dict[str, int] = {}
    for op, flops in counts.get("Global", {}).items():
        key = str(getattr(op, "__name__", op))
        by_operator[key] = by_operator.get(key, 0) + int(flops)
    # FlopCounterMode names modules "<RootClass>.<path>"; keep the path users see in named_modules().
    prefix = f"{type(model).__name__}."
    by_module = {
        name[len(prefix):]: sum(int(v) for v in ops.values())
        for name, ops in counts.items()
        if name.startswith(prefix)
    }
    return FlopCount(
        total=int(counter.get_total_flops()),
        input_shape=shape,
        by_module=_with_parents(by_module),
        by_operator=by_operator,
        on_meta=on_meta,
    )


def _with_parents(by_module: dict[str, int]) -> dict[str, int]:
    """Give every ancestor path the FLOPs of its counted descendants.

    FlopCounterMode credits a module only when it is entered through ``__call__``; a model that drives
    a child through another method (HSTL's region-wise stages) leaves that child's path out while its
    grandchildren are counted. Summing the deepest counted paths restores the parents.
    """
    leaves = [p for p in by_module if not any(q.startswith(p + ".") for q in by_module)]
    totals = dict(by_module)
    for leaf in leaves:
        parts = leaf.split(".")
        for depth in range(1, len(parts)):
            parent = ".".join(parts[:depth])
            if parent not in by_module:
                totals[parent] = totals.get(parent, 0) + by_module[leaf]
    return totals


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
