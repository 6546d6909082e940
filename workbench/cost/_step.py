"""One measured step: random silhouettes in, an inference forward or a training forward+backward."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import nn

from workbench.models import autocast

Mode = Literal["inference", "train"]
MODES: tuple[Mode, ...] = ("inference", "train")


def check_mode(mode: str) -> Mode:
    """Validate a step mode name."""
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected one of {', '.join(MODES)}")
    return mode


def check_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Validate an input shape: a non-empty sequence of positive integers."""
    shape = tuple(input_shape)
    if not shape or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape={shape!r}: expected positive integers, e.g. (1, 30, 64, 44) for [n, s, h, w]")
    return shape


def random_input(input_shape: Sequence[int], device: torch.device, seed: int = 0) -> torch.Tensor:
    """Silhouette-like input in [0, 1]: ``x: float32 input_shape`` (``[n, s, h, w]`` for HSTL)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(tuple(input_shape), generator=generator).to(device)


def output_tensors(output: Any) -> Iterator[torch.Tensor]:
    """Every tensor in a model output: a tensor, a tuple/list/dict, a dataclass or a named tuple."""
    if isinstance(output, torch.Tensor):
        yield output
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        for field in dataclasses.fields(output):
            yield from output_tensors(getattr(output, field.name))
    elif isinstance(output, Mapping):
        for value in output.values():
            yield from output_tensors(value)
    elif isinstance(output, (list, tuple)):
        for value in output:
            yield from output_tensors(value)


def run_step(model: nn.Module, x: torch.Tensor, mode: Mode, amp: str = "off") -> None:
    """Run one step; ``train`` backpropagates the sum of every differentiable output (no optimiser).

    ``amp`` runs the forward under autocast (``workbench.models.autocast``); backward runs outside it.
    """
    if mode == "inference":
        with torch.inference_mode(), autocast(x.device, amp):
            model(x)
        return
    model.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        output = model(x)
    # A real loss costs next to nothing beside the network; summing every output reaches every
    # parameter the outputs depend on, so backward does the same work as under a real loss.
    terms = [t.float().sum() for t in output_tensors(output) if t.requires_grad]
    if not terms:
        raise ValueError(f"{type(model).__name__}: no output requires grad, so a train step has nothing to backpropagate")
    torch.stack(terms).sum().backward()


@contextlib.contextmanager
def left_as_found(model: nn.Module, mode: Mode) -> Iterator[None]:
    """Run steps in ``mode`` and leave the model as it was: train flag, device, buffers, no gradients.

    Train steps update BatchNorm running statistics; a measured model must not drift because of that.
    """
    was_training = prepare(model, mode)
    device = next((t.device for t in model.parameters()), None)
    saved = {name: b.detach().clone() for name, b in model.named_buffers()} if mode == "train" else {}
    try:
        yield
    finally:
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in saved:
                    buffer.copy_(saved[name])
        if mode == "train":
            model.zero_grad(set_to_none=True)
        model.train(was_training)
        if device is not None and next(model.parameters()).device != device:
            model.to(device)


def prepare(model: nn.Module, mode: Mode) -> bool:
    """Set train/eval mode for a step; returns the model's previous ``training`` flag to restore."""
    was_training = model.training
    model.train(mode == "train")
    return was_training
