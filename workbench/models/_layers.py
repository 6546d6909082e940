"""HSTL building blocks: ARME, ASTP, FTA, GeM pooling, separate FCs.

Module and parameter names follow the public HSTL code (``conv3d``, ``hpp``, ``proj.conv``, ``mma``,
``fcs``, ``fc_bin``, ``p``) so its checkpoints load by name. Every block that looks along time takes
``seqL: int64 [n]`` (valid frames per sequence, padding after them) or ``None`` for full-length
sequences; with ``seqL`` each sequence's result equals running it alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from workbench.models._activation import leaky_relu_
from workbench.models._pooling import (
    fill_padding_frames,
    fta_lengths,
    pool_regions,
    temporal_max,
    time_pools,
    zero_padding_frames,
)

# FTA's two temporal max-pools: (kernel, stride, padding).
FTA_WINDOWS = ((3, 3, 0), (5, 3, 1))



class BasicConv3d(nn.Module):
    """A bias-free 3x3x3 Conv3d, stride 1, padding 1 (named ``conv3d`` as in OpenGait)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel_size=3, stride=1, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c_out, s, h, w]`` (channels-last in memory)."""
        # oneDNN's 3D convolutions run about 1.5x faster forward+backward on channels-last input
        # than on NCDHW, which it would reorder on every call; the output stays channels-last.
        # Except over exactly two frames on a CPU: there oneDNN's bf16 channels-last weight gradient is
        # now and then non-finite (torch 2.13), and such maps are too small for the layout to matter.
        if x.shape[2] == 2 and x.device.type == "cpu":
            return self.conv3d(x.contiguous())
        return self.conv3d(x.contiguous(memory_format=torch.channels_last_3d))


class BasicConv2d(nn.Module):
    """A bias-free 1x1 Conv2d projection (named ``conv`` as in OpenGait)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [n, c_in, h, w]`` -> ``[n, c_out, h, w]``."""
        return self.conv(x)


class Stem(nn.Module):
    """One or two Conv3d, each followed by LeakyReLU; children ``0`` and ``2`` as in the public Sequential."""

    def __init__(self, in_channels: int, channels: Sequence[int]) -> None:
        super().__init__()
        self.convs: list[BasicConv3d] = []
        previous = in_channels
        for index, width in enumerate(channels):
            conv = BasicConv3d(previous, width)
            self.add_module(str(2 * index), conv)
            self.convs.append(conv)
            previous = width

    def forward_regions(
        self, x: torch.Tensor, split: Sequence[int], seqL: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """``x: [n, c_in, s, h, w]`` -> the output cut into ``split`` height regions ``[n, c, s, h_r, w]``.

        The last conv's output is cut before its LeakyReLU, so the uncut map is freed at once
        instead of being kept for the activation's backward pass.
        """
        for conv in self.convs[:-1]:
            x = zero_padding_frames(leaky_relu_(conv(x)), seqL)
        regions = split_regions([self.convs[-1](x)], split)
        return [zero_padding_frames(leaky_relu_(region), seqL) for region in regions]

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c, s, h, w]``."""
        for conv in self.convs:
            # In place: the conv output is not saved for backward, and LeakyReLU's backward can use its result.
            x = zero_padding_frames(leaky_relu_(conv(x)), seqL)
        return x


class ARME(nn.Module):
    """Adaptive region-based motion extractor: one Conv3d per height region, concatenated, LeakyReLU.

    Each region is convolved alone, so zero padding sits at region borders and regions never see
    each other's rows. ``forward_regions`` works on the regions as separate tensors, which is how
    ``HSTL`` runs it: no split or concatenation copies in the forward or the backward pass.
    """

    def __init__(self, in_channels: int, out_channels: int, split: Sequence[int]) -> None:
        super().__init__()
        self.split = [int(s) for s in split]
        self.conv3d = nn.ModuleList(BasicConv3d(in_channels, out_channels) for _ in self.split)

    def forward_regions(
        self, regions: Sequence[torch.Tensor], seqL: torch.Tensor | None = None, keep_output: bool = True
    ) -> list[torch.Tensor]:
        """One tensor per region ``[n, c_in, s, h_r, w]`` -> ``[n, c_out, s, h_r, w]`` each.

        ``keep_output=False`` when only pooling reads the output (see ``leaky_relu_``).
        """
        out = []
        for conv, region in zip(self.conv3d, regions, strict=True):
            # In place on the conv output, which the conv does not save: one map per layer stays
            # alive for the backward pass instead of two.
            out.append(zero_padding_frames(leaky_relu_(conv(region), keep_output), seqL))
        return out

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c_out, s, h, w]``."""
        return torch.cat(self.forward_regions(x.split(self.split, dim=3), seqL), dim=3)


class ARMEStage(nn.ModuleList):
    """Two ARME blocks over the same split (children ``0`` and ``1``)."""

    def __init__(self, in_channels: int, channels: Sequence[int], split: Sequence[int]) -> None:
        blocks, previous = [], in_channels
        for width in channels:
            blocks.append(ARME(previous, width, split))
            previous = width
        super().__init__(blocks)

    def forward_regions(self, regions: Sequence[torch.Tensor], seqL: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Per-region tensors in, per-region tensors out (see ``ARME.forward_regions``)."""
        out = list(regions)
        for index, block in enumerate(self):
            assert isinstance(block, ARME)
            # The last block's output feeds pooling (and FTA's pools), which keep indices, not the map.
            out = block.forward_regions(out, seqL, keep_output=index < len(self) - 1)
        return out

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c_out, s, h, w]``."""
        first = self[0]
        assert isinstance(first, ARME)
        return torch.cat(self.forward_regions(x.split(first.split, dim=3), seqL), dim=3)


def split_regions(regions: Sequence[torch.Tensor], split: Sequence[int]) -> list[torch.Tensor]:
    """Re-cut per-region tensors ``[n, c, s, h_r, w]`` into ``split`` (which must refine them) along height.

    Each new region is made contiguous once here, so the convolutions that follow read it directly.
    """
    out: list[torch.Tensor] = []
    sizes = list(split)
    for region in regions:
        height, taken = region.shape[3], []
        while height > 0:
            if not sizes or sizes[0] > height:
                raise ValueError(f"split {list(split)} does not refine the region heights {[r.shape[3] for r in regions]}")
            taken.append(sizes.pop(0))
            height -= taken[-1]
        if len(taken) == 1:
            out.append(region)
        else:
            out.extend(part.contiguous(memory_format=torch.channels_last_3d) for part in region.split(taken, dim=3))
    if sizes:
        raise ValueError(f"split {list(split)} covers more rows than the regions {[r.shape[3] for r in regions]}")
    return out


class GeMHPP(nn.Module):
    """Generalised-mean pooling over ``bins`` horizontal strips with one learnable exponent ``p``."""

    def __init__(self, bins: int = 1, p: float = 6.5, eps: float = 1.0e-6) -> None:
        super().__init__()
        self.bins = int(bins)
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [n, c, h, w]`` -> ``[n, c, bins]``; each strip pools ``h / bins`` rows x ``w`` columns."""
        n, c = x.shape[:2]
        z = x.reshape(n, c, self.bins, -1)
        return z.clamp(min=self.eps).pow(self.p).mean(-1).pow(1.0 / self.p)


class ASTP(nn.Module):
    """Adaptive spatio-temporal pooling: temporal max, optional 1x1 projection, GeM per region."""

    def __init__(self, split: Sequence[int], in_channels: int, out_channels: int, project: bool = True) -> None:
        super().__init__()
        self.split = [int(s) for s in split]
        self.hpp = nn.ModuleList(GeMHPP(bins=1) for _ in self.split)
        self.proj = BasicConv2d(in_channels, out_channels) if project else None

    def forward_pooled(self, pooled: torch.Tensor) -> torch.Tensor:
        """Temporal max already taken: ``pooled: [n, c, h, w]`` -> ``[n, out, len(split)]``."""
        if self.proj is not None:
            pooled = self.proj(pooled)
        regions = pooled.split(self.split, dim=2)
        return torch.cat([gem(region) for gem, region in zip(self.hpp, regions, strict=True)], dim=-1)

    def forward_regions(self, regions: Sequence[torch.Tensor], seqL: torch.Tensor | None = None) -> torch.Tensor:
        """Per-region tensors ``[n, c, s, h_r, w]`` (any cut of the height) -> ``[n, out, len(split)]``."""
        return self.forward_pooled(pool_regions(regions, seqL))

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c, s, h, w]`` -> ``[n, out, len(split)]``."""
        return self.forward_pooled(temporal_max(x, seqL))


class FTA(nn.Module):
    """Frame-level temporal aggregation weights of one region: two 1x1 Conv1d over pooled statistics."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fcs = nn.ModuleList(nn.Conv1d(channels, channels, kernel_size=1) for _ in range(2))

    def forward(self, pooled3: torch.Tensor, pooled5: torch.Tensor) -> torch.Tensor:
        """Mix the two pooled maps ``[n, c, t, h, w]`` with softmax weights from their (h, w) mean."""
        summary = (pooled3 + pooled5).mean(dim=(3, 4))  # [n, c, t]
        score3, score5 = (fc(summary) for fc in self.fcs)
        # A softmax over two scores is the sigmoid of their difference, and w * p3 + (1 - w) * p5 is one
        # lerp: a single pass over the maps each way instead of two products and a sum.
        weight3 = torch.sigmoid(score3 - score5)[..., None, None]  # [n, c, t, 1, 1]
        # Under autocast the 1x1 convs give bf16/fp16 scores while the pooled maps may be float32; lerp
        # wants one dtype.
        return torch.lerp(pooled5, pooled3, weight3.to(pooled3.dtype))


class FTABlock(nn.Module):
    """FTA per height region: max-pool time with kernels 3 and 5 (stride 3), mix per region."""

    def __init__(self, split: Sequence[int], channels: int) -> None:
        super().__init__()
        self.split = [int(s) for s in split]
        self.mma = nn.ModuleList(FTA(channels) for _ in self.split)

    def forward_regions(
        self, regions: Sequence[torch.Tensor], seqL: torch.Tensor | None = None
    ) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor]:
        """Per-region ``[n, c, s, h_r, w]`` -> per-region ``[n, c, (s - 3) // 3 + 1, h_r, w]``, new seqL, input's temporal max.

        The temporal max of the input ``[n, c, h, w]`` (what the ASTP before FTA pools) comes from
        the same pass over the frames as FTA's pools, so their gradients share one buffer.
        """
        new_seqL = None if seqL is None else fta_lengths(seqL)
        out, maxima = [], []
        for fta, region in zip(self.mma, regions, strict=True):
            if seqL is None:
                pooled3, pooled5, maximum = time_pools(region, FTA_WINDOWS, with_max=True)
            else:
                maximum = temporal_max(region, seqL)
                # Padding frames must lose every max, as the implicit -inf padding does for a lone sequence.
                # (A new tensor: ``forward`` passes views of its caller's input.)
                region = fill_padding_frames(region, seqL, float("-inf"))
                pooled3, pooled5 = time_pools(region, FTA_WINDOWS)
                pooled3 = fill_padding_frames(pooled3, new_seqL, 0.0, inplace=True)
                pooled5 = fill_padding_frames(pooled5, new_seqL, 0.0, inplace=True)
            out.append(fta(pooled3, pooled5))
            maxima.append(maximum)
        return out, new_seqL, maxima[0] if len(maxima) == 1 else torch.cat(maxima, dim=2)

    def forward(
        self, x: torch.Tensor, seqL: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x: [n, c, s, h, w]`` -> ``([n, c, (s - 3) // 3 + 1, h, w], new seqL)``."""
        out, new_seqL, _ = self.forward_regions(x.split(self.split, dim=3), seqL)
        return torch.cat(out, dim=3), new_seqL


class SeparateFCs(nn.Module):
    """One bias-free linear map per part: ``fc_bin: [parts, c_in, c_out]``."""

    def __init__(self, parts: int, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, in_channels, out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [n, c_in, p]`` -> ``[n, c_out, p]``."""
        return torch.bmm(x.permute(2, 0, 1), self.fc_bin).permute(1, 2, 0)
