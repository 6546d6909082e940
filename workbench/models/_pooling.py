"""Pooling along time that honours sequence lengths, and a lean strided temporal max-pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F


def frame_mask(seqL: torch.Tensor, frames: int) -> torch.Tensor:
    """Valid frames: ``seqL: [n]`` -> ``bool [n, frames]``."""
    return torch.arange(frames, device=seqL.device) < seqL.unsqueeze(1)


def zero_padding_frames(x: torch.Tensor, seqL: torch.Tensor | None) -> torch.Tensor:
    """Zero the frames past each sequence's length: ``x: [n, c, s, h, w]``."""
    if seqL is None:
        return x
    mask = frame_mask(seqL, x.shape[2])[:, None, :, None, None]
    return x.masked_fill(~mask, 0.0)


def temporal_max(x: torch.Tensor, seqL: torch.Tensor | None) -> torch.Tensor:
    """Max over each sequence's valid frames: ``x: [n, c, s, h, w]`` -> ``[n, c, h, w]``."""
    if seqL is None:
        return x.max(dim=2).values
    # Narrow views per sequence: no masked copy of the whole feature map.
    return torch.stack([x[i, :, :length].max(dim=1).values for i, length in enumerate(seqL.tolist())])


def pool_regions(regions: Sequence[torch.Tensor], seqL: torch.Tensor | None) -> torch.Tensor:
    """Temporal max of per-region tensors ``[n, c, s, h_r, w]``, stacked along height: ``[n, c, h, w]``."""
    pooled = [temporal_max(region, seqL) for region in regions]
    return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=2)


def fta_lengths(seqL: torch.Tensor) -> torch.Tensor:
    """Frames left after FTA's stride-3 pooling: ``(L - 3) // 3 + 1``."""
    return torch.div(seqL - 3, 3, rounding_mode="floor") + 1


class _TimeMaxPool(torch.autograd.Function):
    """``max_pool3d`` over time that keeps each argmax as a uint8 offset inside its window.

    ``max_pool3d`` saves int64 indices, eight bytes per output element; FTA's two pools over the
    stage-2 map would hold hundreds of MB of them until the backward pass. The forward values and
    the gradient (sent to the same argmax frames) are exactly those of ``max_pool3d``.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
        values, indices = F.max_pool3d(
            x, (kernel, 1, 1), (stride, 1, 1), (padding, 0, 0), return_indices=True
        )
        # Indices are flat over (s, h, w); the frame minus the window start is the offset.
        plane = x.shape[3] * x.shape[4]
        starts = torch.arange(values.shape[2], device=x.device) * stride - padding
        offsets = (torch.div(indices, plane, rounding_mode="floor") - starts[:, None, None]).to(torch.uint8)
        ctx.save_for_backward(offsets)
        ctx.geometry = (x.shape, kernel, stride, padding)
        ctx.channels_last = x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d)
        return values

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        (offsets,) = ctx.saved_tensors
        shape, kernel, stride, padding = ctx.geometry
        fmt = torch.channels_last_3d if ctx.channels_last else torch.contiguous_format
        grad_in = torch.zeros(shape, dtype=grad.dtype, device=grad.device).contiguous(memory_format=fmt)
        frames, steps = shape[2], grad.shape[2]
        for offset in range(kernel):
            # Output step j sends its gradient to frame j * stride - padding + offset when that
            # frame is its argmax; keep the steps whose frame lies inside the sequence.
            first = max(0, -((offset - padding) // stride))
            last = min(steps, (frames - 1 + padding - offset) // stride + 1)
            if last <= first:
                continue
            start = first * stride - padding + offset
            target = grad_in[:, :, start : start + (last - first - 1) * stride + 1 : stride]
            chosen = offsets[:, :, first:last] == offset
            target.add_(torch.where(chosen, grad[:, :, first:last], 0.0))
        return grad_in, None, None, None


def time_max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int = 0) -> torch.Tensor:
    """Max-pool ``x: [n, c, s, h, w]`` over time (kernel, stride, padding); values as ``max_pool3d``."""
    if torch.is_grad_enabled() and x.requires_grad and kernel <= 255:
        return _TimeMaxPool.apply(x, kernel, stride, padding)
    return F.max_pool3d(x, (kernel, 1, 1), (stride, 1, 1), (padding, 0, 0))
