"""GaitGS building blocks: 3D conv blocks with a per-strip twin, temporal units, part pooling, two spans.

Every block that looks along time takes ``seqL: int64 [n]`` (valid frames or units per sequence,
padding after them) or ``None``; with ``seqL`` each sequence's result equals running it alone, so
padding is zeroed wherever a lone sequence would see zero padding and set to ``-inf`` before max
pooling, and the Transformer ignores padded tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from workbench.models._activation import LEAKY_SLOPE
from workbench.models._layers import GeMHPP, SeparateFCs
from workbench.models._pooling import (
    fill_padding_frames,
    frame_mask,
    prepare_lengths,
    temporal_max,
    zero_padding_frames,
)

#: Frames per coarse-branch unit (the Conv3d (3, 1, 1) with temporal stride 3).
UNIT_FRAMES = 3


def unit_lengths(seqL: torch.Tensor | None) -> torch.Tensor | None:
    """Whole 3-frame units per sequence: ``seqL // 3`` (a stride-3 conv drops the leftover frames)."""
    return None if seqL is None else torch.div(seqL, UNIT_FRAMES, rounding_mode="floor")


def prepare_silhouettes(
    x: torch.Tensor, seqL: torch.Tensor | None, height: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Check ``x: [n, s, h, w]``, add the channel axis, repeat short sequences to 3+ frames.

    Returns ``([n, 1, s', h, w], seqL')``; ``seqL'`` is ``None`` when every sequence fills the batch.
    """
    if x.dim() != 4:
        raise ValueError(f"GaitGS input: expected [n, s, h, w], got shape {tuple(x.shape)}")
    h = x.shape[2]
    if h != height:
        raise ValueError(
            f"GaitGS input: height {h} does not match the spec's input_height {height}; "
            "cut/resize the silhouettes or build the model for this height (e.g. gaitgs-128 for 128x88)"
        )
    return prepare_lengths(x.unsqueeze(1), seqL, "GaitGS")


class ConvBlock3d(nn.Module):
    """Sum of bias-free 3x3x3, 1x3x3 and 3x1x1 Conv3d (all stride 1, shape-preserving), then LeakyReLU.

    The three kernels are kept as parameters but run as one 3x3x3 conv whose kernel is their sum
    (the 1x3x3 one at the middle frame, the 3x1x1 one at the middle pixel): the same function with
    one conv call and 27 instead of 39 multiply-adds per output.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.full = nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.spatial = nn.Conv3d(in_channels, out_channels, kernel_size=(1, 3, 3), padding=(0, 1, 1), bias=False)
        self.temporal = nn.Conv3d(in_channels, out_channels, kernel_size=(3, 1, 1), padding=(1, 0, 0), bias=False)

    def kernel(self) -> torch.Tensor:
        """The fused kernel ``[c_out, c_in, 3, 3, 3]``."""
        return (
            self.full.weight
            + F.pad(self.spatial.weight, (0, 0, 0, 0, 1, 1))
            + F.pad(self.temporal.weight, (1, 1, 1, 1, 0, 0))
        )

    def forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c_out, s, h, w]``; ``kernel`` reuses a fused kernel."""
        weight = self.kernel() if kernel is None else kernel
        return F.leaky_relu(F.conv3d(x, weight, padding=1), LEAKY_SLOPE)


class StripBlock(nn.Module):
    """A ``ConvBlock3d`` over the whole map plus a second one run on each horizontal strip alone.

    The strip block's weights are shared by all strips; zero padding at strip borders keeps each
    strip blind to its neighbours, which is what makes it local.
    """

    def __init__(self, in_channels: int, out_channels: int, split: Sequence[int]) -> None:
        super().__init__()
        self.split = [int(s) for s in split]
        self.whole = ConvBlock3d(in_channels, out_channels)
        self.strips = ConvBlock3d(in_channels, out_channels)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` (``h == sum(split)``) -> ``[n, c_out, s, h, w]``."""
        return zero_padding_frames(self.whole(x) + self._local(x), seqL)

    def _local(self, x: torch.Tensor) -> torch.Tensor:
        kernel = self.strips.kernel()
        if len(set(self.split)) > 1:
            return torch.cat([self.strips(strip, kernel) for strip in x.split(self.split, dim=3)], dim=3)
        # Equal strips are folded into the batch: one conv call instead of one per strip.
        n, c, s, h, w = x.shape
        k = len(self.split)
        folded = x.reshape(n, c, s, k, h // k, w).permute(0, 3, 1, 2, 4, 5).reshape(n * k, c, s, h // k, w)
        out = self.strips(folded, kernel)
        return out.reshape(n, k, -1, s, h // k, w).permute(0, 2, 3, 1, 4, 5).reshape(n, -1, s, h, w)


class StripStage(nn.ModuleList):
    """``StripBlock``s applied in order (children ``0``, ``1`` ...)."""

    def __init__(self, in_channels: int, widths: Sequence[int], split: Sequence[int]) -> None:
        blocks, previous = [], in_channels
        for width in widths:
            blocks.append(StripBlock(previous, width, split))
            previous = width
        super().__init__(blocks)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c_out, s, h, w]``."""
        for block in self:
            x = block(x, seqL)
        return x


class GaitGSStem(nn.Module):
    """Conv3d 3x3x3 then Conv3d 1x1x1 (bias-free), each followed by LeakyReLU."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, channels, kernel_size=3, padding=1, bias=False)
        self.mix = nn.Conv3d(channels, channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c_in, s, h, w]`` -> ``[n, c, s, h, w]``."""
        x = zero_padding_frames(F.leaky_relu(self.conv(x), LEAKY_SLOPE), seqL)
        # A bias-free 1x1x1 conv and LeakyReLU keep zero padding frames zero.
        return F.leaky_relu(self.mix(x), LEAKY_SLOPE)


class UnitConv(nn.Module):
    """Frames to 3-frame units: bias-free Conv3d kernel (3, 1, 1), temporal stride 3."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, kernel_size=(UNIT_FRAMES, 1, 1), stride=(UNIT_FRAMES, 1, 1), bias=False)

    def forward(self, x: torch.Tensor, units: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c, s, h, w]`` -> ``[n, c, s // 3, h, w]``; ``units`` valid units per sequence."""
        # A unit straddling a sequence's end sees padding; a lone run would not have that unit at all.
        return zero_padding_frames(self.conv(x), units)


class PartPooling(nn.Module):
    """Mean + max over each horizontal part's rows and columns, frame by frame."""

    def __init__(self, split: Sequence[int]) -> None:
        super().__init__()
        self.split = [int(s) for s in split]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [n, c, s, h, w]`` -> ``[n, c, s, parts]``."""
        n, c, s = x.shape[:3]
        if len(set(self.split)) == 1:
            z = x.reshape(n, c, s, len(self.split), -1)
            return z.mean(-1) + z.amax(-1)
        parts = [p.reshape(n, c, s, -1) for p in x.split(self.split, dim=3)]
        return torch.stack([p.mean(-1) + p.amax(-1) for p in parts], dim=-1)


class LocalSpan(nn.Module):
    """Local temporal span: per-part Conv1d attention over short (3) and long (5) frame windows.

    For each window size ``k``, a per-part 1D conv net scores every frame (sigmoid) and weights the
    frame's window template (average + max pooling over ``k`` frames); the two are summed.
    ``x: [n, c, s, p] -> [n, c, s, p]``.
    """

    def __init__(self, channels: int, parts: int, squeeze: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // squeeze)
        self.parts = int(parts)
        # One conv with groups=parts is ``parts`` independent Conv1d nets, run in a single call.
        self.short_in = nn.Conv1d(parts * channels, parts * hidden, 3, padding=1, groups=parts, bias=False)
        self.short_out = nn.Conv1d(parts * hidden, parts * channels, 1, groups=parts, bias=False)
        self.long_in = nn.Conv1d(parts * channels, parts * hidden, 3, padding=1, groups=parts, bias=False)
        self.long_out = nn.Conv1d(parts * hidden, parts * channels, 3, padding=1, groups=parts, bias=False)

    def _scores(self, x: torch.Tensor, first: nn.Conv1d, second: nn.Conv1d, seqL: torch.Tensor | None) -> torch.Tensor:
        hidden = fill_padding_frames(F.leaky_relu(first(x), LEAKY_SLOPE), seqL, 0.0)
        return torch.sigmoid(second(hidden))

    @staticmethod
    def _template(x: torch.Tensor, lowest: torch.Tensor, kernel: int, seqL: torch.Tensor | None) -> torch.Tensor:
        # Average pooling counts the zero padding (as nn.AvgPool1d does); max pooling never picks it.
        # A window wholly in the padding pools -inf: zero it, or the product with the frame scores
        # would send 0 * inf = NaN into their gradient.
        pad = kernel // 2
        return F.avg_pool1d(x, kernel, 1, pad) + fill_padding_frames(F.max_pool1d(lowest, kernel, 1, pad), seqL, 0.0)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c, s, p]`` -> ``[n, c, s, p]`` (padding steps zero)."""
        n, c, s, p = x.shape
        flat = fill_padding_frames(x.permute(0, 3, 1, 2).reshape(n, p * c, s), seqL, 0.0)
        lowest = fill_padding_frames(flat, seqL, float("-inf"))
        short = self._template(flat, lowest, 3, seqL) * self._scores(flat, self.short_in, self.short_out, seqL)
        long = self._template(flat, lowest, 5, seqL) * self._scores(flat, self.long_in, self.long_out, seqL)
        out = fill_padding_frames(short + long, seqL, 0.0)
        return out.reshape(n, p, c, s).permute(0, 2, 3, 1)


class GlobalSpan(nn.Module):
    """Global temporal span: depthwise Conv1d positions, a class token per part, view prior, Transformer.

    Each part's frames form one token sequence; the class token's output, mapped by a per-part
    linear layer, is the part's feature. ``x: [n, c, s, p]``, ``prior: [n, c]`` -> ``[n, out, p]``.
    """

    def __init__(
        self,
        channels: int,
        parts: int,
        out_channels: int,
        *,
        depth: int = 3,
        heads: int = 8,
        ff_channels: int = 256,
        dropout: float = 0.2,
        kernel: int = 7,
    ) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.randn(parts, channels))
        self.position = nn.Conv1d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=False)
        layer = nn.TransformerEncoderLayer(
            channels, heads, ff_channels, dropout=dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.fc = SeparateFCs(parts, channels, out_channels)

    def forward(self, x: torch.Tensor, prior: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """``x: [n, c, s, p]`` (padding zero), ``prior: [n, c]`` -> ``[n, out, p]``."""
        n, c, s, p = x.shape
        tokens = x.permute(0, 3, 1, 2).reshape(n * p, c, s)
        token_lengths = seqL.repeat_interleave(p) if seqL is not None else None
        tokens = tokens + fill_padding_frames(self.position(tokens), token_lengths, 0.0)
        sequence = torch.cat([self.cls_token.repeat(n, 1).unsqueeze(1), tokens.transpose(1, 2)], dim=1)
        sequence = sequence + prior.repeat_interleave(p, dim=0).unsqueeze(1)
        ignore = None
        if token_lengths is not None:
            ignore = ~frame_mask(token_lengths + 1, s + 1)  # the class token leads each sequence
        cls = self.encoder(sequence, src_key_padding_mask=ignore)[:, 0]  # [n * p, c]
        return self.fc(cls.reshape(n, p, c).permute(0, 2, 1))


class ViewPrior(nn.Module):
    """View classifier on GeM-pooled features of both branches; the predicted view picks a learned embedding.

    Returns ``(prior [n, embed], logits [n, views])``; the prior is the embedding row of the arg-max view.
    """

    def __init__(self, in_channels: int, views: int, embed_channels: int) -> None:
        super().__init__()
        self.gem = GeMHPP(bins=1)
        self.classifier = nn.Linear(in_channels, views, bias=False)
        self.embedding = nn.Parameter(torch.randn(views, embed_channels))

    def forward(
        self,
        fine: torch.Tensor,
        coarse: torch.Tensor,
        seqL: torch.Tensor | None = None,
        units: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``fine: [n, c, s, h, w]``, ``coarse: [n, c, s // 3, h, w]`` -> ``(prior, logits)``."""
        pooled = torch.cat([temporal_max(fine, seqL), temporal_max(coarse, units)], dim=1)
        logits = self.classifier(self.gem(pooled).squeeze(-1))
        return self.embedding[logits.argmax(dim=-1)], logits
