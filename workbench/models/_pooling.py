"""Pooling along time that honours sequence lengths, and a lean strided temporal max-pool."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

#: The public HSTL and GaitGS code repeat a shorter sequence to at least 3 frames.
MIN_FRAMES = 3


def frame_mask(seqL: torch.Tensor, frames: int) -> torch.Tensor:
    """Valid frames: ``seqL: [n]`` -> ``bool [n, frames]``."""
    return torch.arange(frames, device=seqL.device) < seqL.unsqueeze(1)


def fill_padding_frames(x: torch.Tensor, seqL: torch.Tensor | None, value: float, inplace: bool = False) -> torch.Tensor:
    """``x: [n, c, s, ...]`` with the frames past each sequence's length set to ``value``.

    The result keeps ``x``'s memory layout (``masked_fill`` would hand back a contiguous tensor, and
    every channels-last convolution after it would copy the map back). With ``inplace`` and no
    autograd tracking ``x`` the fill happens in place; pass it only for a tensor the caller owns.
    """
    if seqL is None:
        return x
    valid = frame_mask(seqL, x.shape[2]).view(x.shape[0], 1, x.shape[2], *([1] * (x.dim() - 3)))
    if inplace and not (torch.is_grad_enabled() and x.requires_grad):
        return x.masked_fill_(~valid, value)
    return torch.where(valid, x, value)


def zero_padding_frames(x: torch.Tensor, seqL: torch.Tensor | None) -> torch.Tensor:
    """Zero the frames past each sequence's length: ``x: [n, c, s, h, w]``, a layer output the caller owns.

    In place at inference; under autograd a new tensor in ``x``'s layout (the in-place activation
    before it may have saved ``x`` for its backward pass).
    """
    return fill_padding_frames(x, seqL, 0.0, inplace=True)


def temporal_max(x: torch.Tensor, seqL: torch.Tensor | None) -> torch.Tensor:
    """Max over each sequence's valid frames: ``x: [n, c, s, h, w]`` -> ``[n, c, h, w]``."""
    if seqL is None:
        return _max_over_time(x)[0]
    # Narrow views per sequence: no masked copy of the whole feature map, and each view keeps the
    # channels-last layout that the fast reduction needs.
    return torch.stack([_max_over_time(x[i : i + 1, :, :length])[0][0] for i, length in enumerate(seqL.tolist())])


def _max_over_time(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``x.max(dim=2)`` as (values, indices) ``[n, c, h, w]``; the same result, faster for channels-last maps."""
    if x.dim() == 5 and x.shape[1] > 1 and x.is_contiguous(memory_format=torch.channels_last_3d):
        # Seen as a contiguous [n, s, h, w, c] array the reduction runs over an outer axis, about
        # 3x faster on CPU than reducing the strided time axis in place.
        values, indices = x.permute(0, 2, 3, 4, 1).max(dim=1)
        return values.permute(0, 3, 1, 2), indices.permute(0, 3, 1, 2)
    values, indices = x.max(dim=2)
    return values, indices


def pool_regions(regions: Sequence[torch.Tensor], seqL: torch.Tensor | None) -> torch.Tensor:
    """Temporal max of per-region tensors ``[n, c, s, h_r, w]``, stacked along height: ``[n, c, h, w]``."""
    pooled = [temporal_max(region, seqL) for region in regions]
    return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=2)


def fta_lengths(seqL: torch.Tensor) -> torch.Tensor:
    """Frames left after FTA's stride-3 pooling: ``(L - 3) // 3 + 1``."""
    return torch.div(seqL - 3, 3, rounding_mode="floor") + 1


Window = tuple[int, int, int]  # (kernel, stride, padding) along time


def _add_window_grads(grad_in: torch.Tensor, offsets: torch.Tensor, grad: torch.Tensor, window: Window) -> None:
    """Send each pooled step's gradient to its argmax frame (``offsets`` inside the window).

    One scatter along time: the argmax frame of step ``j`` is ``j * stride - padding + offset``.
    The int64 frame map lives only for this call; overlapping windows add up as they should.
    """
    _, stride, padding = window
    starts = torch.arange(grad.shape[2], device=grad.device) * stride - padding
    frames = offsets + starts[:, None, None]  # uint8 + int64: the int64 map in one pass
    grad_in.scatter_add_(2, frames, grad)


class _TimePools(torch.autograd.Function):
    """Strided max-pools over time, and optionally the max over all frames, with one backward buffer.

    ``max_pool3d`` keeps int64 indices (eight bytes per output element) until the backward pass and
    every pool returns its own full-size gradient; here each argmax is a uint8 offset inside its
    window and all gradients land in a single buffer. Values and gradients are those of
    ``max_pool3d`` and ``max(dim=2)``, which choose the argmax frames here.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, windows: tuple[Window, ...], with_max: bool) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        plane = x.shape[3] * x.shape[4]
        outputs, saved = [], []
        for kernel, stride, padding in windows:
            values, indices = F.max_pool3d(x, (kernel, 1, 1), (stride, 1, 1), (padding, 0, 0), return_indices=True)
            # Indices are flat over (s, h, w); the frame minus the window's first frame is the offset.
            # In place, so only one int64 map exists at a time.
            starts = torch.arange(values.shape[2], device=x.device) * stride - padding
            indices.div_(plane, rounding_mode="floor").sub_(starts[:, None, None])
            saved.append(indices.to(torch.uint8))
            del indices
            outputs.append(values)
        if with_max:
            values, indices = _max_over_time(x)
            outputs.append(values)
            saved.append(indices)
        ctx.save_for_backward(*saved)
        ctx.windows, ctx.with_max, ctx.shape = windows, with_max, x.shape
        ctx.channels_last = x.is_contiguous(memory_format=torch.channels_last_3d)
        return tuple(outputs)

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor | None) -> tuple[torch.Tensor | None, None, None]:
        saved = ctx.saved_tensors
        fmt = torch.channels_last_3d if ctx.channels_last else torch.contiguous_format
        reference = next(g for g in grads if g is not None)
        # Half-precision gradients (autocast) add up in float32: CPU scatter_add_ is about 1.7x slower
        # on bf16 than on float32, and the sum keeps its precision; one cast at the end.
        accumulate = torch.float32 if reference.dtype in (torch.bfloat16, torch.float16) else reference.dtype
        # Zeroed in the input's layout directly: zeros then a layout change would copy the whole map.
        grad_in = torch.empty(ctx.shape, dtype=accumulate, device=reference.device, memory_format=fmt).zero_()
        for window, offsets, grad in zip(ctx.windows, saved, grads, strict=False):
            if grad is not None:
                _add_window_grads(grad_in, offsets, grad.to(accumulate), window)
        if ctx.with_max and grads[-1] is not None:
            grad_in.scatter_add_(2, saved[-1].unsqueeze(2), grads[-1].to(accumulate).unsqueeze(2))
        return grad_in.to(reference.dtype), None, None


def time_pools(x: torch.Tensor, windows: Sequence[Window], with_max: bool = False) -> tuple[torch.Tensor, ...]:
    """Max-pool ``x: [n, c, s, h, w]`` over time for each (kernel, stride, padding) window.

    Returns one ``[n, c, s', h, w]`` per window and, with ``with_max``, the max over all frames
    ``[n, c, h, w]`` last. Values equal ``max_pool3d`` / ``max(dim=2)``.
    """
    windows = tuple((int(k), int(s), int(p)) for k, s, p in windows)
    if torch.is_grad_enabled() and x.requires_grad and all(k <= 255 for k, _, _ in windows):
        return _TimePools.apply(x, windows, with_max)
    outputs = [F.max_pool3d(x, (k, 1, 1), (s, 1, 1), (p, 0, 0)) for k, s, p in windows]
    if with_max:
        outputs.append(_max_over_time(x)[0])
    return tuple(outputs)


def time_max_pool(x: torch.Tensor, kernel: int, stride: int, padding: int = 0) -> torch.Tensor:
    """Max-pool ``x: [n, c, s, h, w]`` over time (kernel, stride, padding); values as ``max_pool3d``."""
    return time_pools(x, [(kernel, stride, padding)])[0]


def prepare_lengths(
    x: torch.Tensor, seqL: torch.Tensor | None, model: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check ``seqL`` against ``x: [n, c, s, h, w]`` and repeat short sequences to 3+ frames.

    ``seqL`` comes back ``None`` when every sequence fills the batch, so the fixed-length path runs.
    """
    n, s = x.shape[0], x.shape[2]
    if s < 1:
        raise ValueError(f"{model} input: a batch needs at least one frame per sequence")
    if seqL is not None:
        seqL = torch.as_tensor(seqL, dtype=torch.int64, device=x.device).reshape(-1)
        if seqL.numel() != n:
            raise ValueError(f"{model} input: seqL has {seqL.numel()} lengths for a batch of {n} sequences")
        if n and (int(seqL.min()) < 1 or int(seqL.max()) > s):
            raise ValueError(f"{model} input: seqL must lie in 1..{s} (the batch's frame count), got {seqL.tolist()}")
        if bool((seqL == s).all()):
            seqL = None
    if seqL is None:
        if s < MIN_FRAMES:
            # The public code repeats 1 frame 3 times and 2 frames twice.
            x = x.repeat(1, 1, 3 if s == 1 else 2, 1, 1)
        return x, None
    return _repeat_short(x, seqL)


def _repeat_short(x: torch.Tensor, seqL: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat sequences under 3 frames as a lone run would; zero every padding frame."""
    lengths = seqL.tolist()
    new_lengths = [length if length >= MIN_FRAMES else (3 if length == 1 else 4) for length in lengths]
    frames = max(x.shape[2], *new_lengths)
    sequences = []
    for i, (length, new) in enumerate(zip(lengths, new_lengths, strict=True)):
        valid = x[i, :, :length]
        if new != length:
            valid = valid.repeat(1, new // length, 1, 1)
        sequences.append(F.pad(valid, (0, 0, 0, 0, 0, frames - new)))
    return torch.stack(sequences), torch.tensor(new_lengths, dtype=torch.int64, device=x.device)
