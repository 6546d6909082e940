"""LeakyReLU in place that keeps a one-byte sign mask for its backward pass instead of its output."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

LEAKY_SLOPE = 0.01


class _LeakyReLUMask(torch.autograd.Function):
    """``leaky_relu_`` whose backward needs only ``x > 0``; its gradient equals ``leaky_relu``'s exactly."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, slope: float) -> torch.Tensor:
        positive = x > 0
        F.leaky_relu_(x, slope)
        ctx.mark_dirty(x)
        ctx.save_for_backward(positive)
        ctx.slope = slope
        return x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (positive,) = ctx.saved_tensors
        return torch.where(positive, grad, grad * ctx.slope), None


def leaky_relu_(x: torch.Tensor, keep_output: bool = True, slope: float = LEAKY_SLOPE) -> torch.Tensor:
    """LeakyReLU in place on ``x`` (a tensor nothing else saved, e.g. a conv output).

    With ``keep_output=False`` the backward pass keeps a bool mask (a quarter of the fp32 map) rather
    than the output: worth it when no later op saves the output anyway (it only feeds pooling that
    keeps indices, not the map). With ``keep_output=True`` the output doubles as the next conv's
    saved input, so PyTorch's own in-place LeakyReLU costs nothing extra.
    """
    if keep_output or not (torch.is_grad_enabled() and x.requires_grad):
        return F.leaky_relu_(x, slope)
    return _LeakyReLUMask.apply(x, slope)
