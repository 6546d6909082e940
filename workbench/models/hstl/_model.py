"""The HSTL network built from an ``HSTLSpec``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.models._family import GaitModel
from workbench.models._layers import (
    ASTP,
    ARMEStage,
    FTABlock,
    GeMHPP,
    SeparateFCs,
    Stem,
    split_regions,
)
from workbench.models._pooling import pool_regions, prepare_lengths
from workbench.models.hstl._spec import HSTLSpec


def fta_name(stage_number: int) -> str:
    """Module name of the FTA after stage ``stage_number`` (2-based, as the public ``fta`` after ``arme2``)."""
    return "fta" if stage_number == 2 else f"fta{stage_number}"


class HSTL(GaitModel):
    """Hierarchical spatio-temporal gait model, any split lists; module names match the public code.

    ``forward(x: [n, s, h, w], seqL: int64 [n] | None) -> ModelOutput``; embeddings and inference
    features are the BatchNorm output (``bnft``), logits come from ``Head1``.
    """

    def __init__(self, spec: HSTLSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        width = spec.astp_channels
        self.arme1 = Stem(spec.in_channels, spec.stem_channels)
        channels = spec.stem_channels[-1]
        self.astp1 = ASTP(spec.first_split, channels, width, project=spec.first_project)
        for index, stage in enumerate(spec.stages):
            number = index + 2
            self.add_module(f"arme{number}", ARMEStage(channels, stage.channels, stage.split))
            channels = stage.channels[1]
            self.add_module(f"astp{number}", ASTP(stage.split, channels, width, project=stage.project))
            if stage.fta:
                self.add_module(fta_name(number), FTABlock(stage.split, channels))
                self.add_module(f"astp{number}_fta", ASTP(stage.split, channels, width, project=stage.project))
        self.HPP = GeMHPP(bins=spec.strips)
        self.Head0 = SeparateFCs(spec.parts, width, width)
        self.Bn = nn.BatchNorm1d(width)
        self.Head1 = SeparateFCs(spec.parts, width, spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenGait's initialisation: xavier-uniform convs, zero biases, BN weight ~ N(1, 0.02)."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm1d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def prepare_input(
        self, x: torch.Tensor, seqL: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check ``x: [n, s, h, w]``, add the channel axis, repeat short sequences to 3+ frames.

        Returns ``([n, c, s', h, w], seqL')``; ``seqL'`` is ``None`` when every sequence fills the batch.
        """
        spec = self.spec
        if x.dim() == 4 and spec.in_channels == 1:
            x = x.unsqueeze(1)
        elif x.dim() != 5 or x.shape[1] != spec.in_channels:
            expected = "[n, s, h, w]" if spec.in_channels == 1 else f"[n, {spec.in_channels}, s, h, w]"
            raise ValueError(f"HSTL input: expected {expected}, got shape {tuple(x.shape)}")
        h = x.shape[3]
        if h != spec.input_height:
            raise ValueError(
                f"HSTL input: height {h} does not match the spec (first_split sums to {spec.input_height}); "
                "cut/resize the silhouettes or build the spec for this height"
            )
        return prepare_lengths(x, seqL, "HSTL")

    def forward_features(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """Part features before the head: ``x: [n, s, h, w]`` -> ``[n, c, p]``."""
        out, lengths = self.prepare_input(x, seqL)
        spec = self.spec
        # Inside the network the feature map lives as one tensor per height region: each ARME conv
        # reads and writes whole tensors, and only a finer split later re-cuts them.
        regions = self.arme1.forward_regions(out, self._stem_cut(), lengths)
        # One temporal max per feature map serves its ASTP and, for the last map, the final HPP.
        pooled = pool_regions(regions, lengths)
        parts = [self.astp1.forward_pooled(pooled)]
        for index, stage in enumerate(spec.stages):
            number = index + 2
            regions = self._arme(index, regions, lengths)
            if stage.fta:
                regions, new_lengths, pooled = getattr(self, fta_name(number)).forward_regions(regions, lengths)
                parts.append(getattr(self, f"astp{number}").forward_pooled(pooled))
                lengths = new_lengths
                pooled = pool_regions(regions, lengths)
                parts.append(getattr(self, f"astp{number}_fta").forward_pooled(pooled))
            else:
                pooled = pool_regions(regions, lengths)
                parts.append(getattr(self, f"astp{number}").forward_pooled(pooled))
        parts.append(self.HPP(pooled))
        return torch.cat(parts, dim=-1)

    def _stem_cut(self) -> list[int]:
        """The regions the stem convolves: the whole height when it is halved right after, else the first split."""
        spec = self.spec
        return [spec.input_height] if 0 in spec.downsample_before else list(spec.stages[0].split)

    def _arme(self, index: int, regions: list[torch.Tensor], lengths: torch.Tensor | None) -> list[torch.Tensor]:
        """ARME stage ``index`` (0-based): halve the height first where the spec says, re-cut to its split, convolve."""
        if index in self.spec.downsample_before:
            full = regions[0] if len(regions) == 1 else torch.cat(regions, dim=3)
            regions = [F.max_pool3d(full, kernel_size=(1, 2, 2), stride=(1, 2, 2))]
        regions = split_regions(regions, self.spec.stages[index].split)
        return getattr(self, f"arme{index + 2}").forward_regions(regions, lengths)

    def _check_stage(self, stage: int) -> None:
        last = len(self.spec.stages) + 1
        if not 1 <= stage <= last:
            raise ValueError(f"stage {stage}: this HSTL has stages 1 (the stem) to {last}")

    def feature_maps(self, x: torch.Tensor, seqL: torch.Tensor | None = None, stage: int = 1) -> torch.Tensor:
        """The map after ``arme<stage>`` (1: the stem; FTA before it included), regions joined: ``[n, c, s, h', w']``."""
        self._check_stage(stage)
        out, lengths = self.prepare_input(x, seqL)
        regions = self.arme1.forward_regions(out, self._stem_cut(), lengths)
        for index in range(stage - 1):
            regions = self._arme(index, regions, lengths)
            number = index + 2
            if self.spec.stages[index].fta and number < stage:  # the next stage reads the aggregated map
                regions, lengths, _ = getattr(self, fta_name(number)).forward_regions(regions, lengths)
        return regions[0] if len(regions) == 1 else torch.cat(regions, dim=3)

    def feature_map_regions(self, stage: int = 1) -> list[int]:
        """The stem convolves the whole height (its output is cut only afterwards); each ARME stage's
        convolutions stay inside the regions of its own split."""
        self._check_stage(stage)
        return [self.spec.input_height] if stage == 1 else list(self.spec.stages[stage - 2].split)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features: [n, c, p]`` -> ``(embeddings [n, c, p], logits [n, classes, p])``."""
        bnft = self.Bn(self.Head0(features))
        return bnft, self.Head1(bnft)
