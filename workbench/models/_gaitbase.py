"""GaitBase, OpenGait's baseline, with its horizontal parts cut from a partition tree.

Per frame, a 2D residual network: a 3x3 stem conv with BatchNorm and ReLU, then four stages of one
ResNet BasicBlock each (strides 1, 2, 2, 1). A temporal max over each sequence, horizontal pooling
(mean + max over each part's rows and the width), separate FCs to the embeddings, and a BNNeck whose
L2-normalised features meet L2-normalised class weights for the logits. OpenGait pools 16 equal
strips; here the parts may instead be a tree's cut rescaled to the final feature height
(``GaitBaseSpec.from_tree``), which is the uniform partition a discovered hierarchy replaces.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from workbench.models._family import (
    GaitModel,
    ModelFamily,
    SpecError,
    SpecFields,
    TreeCut,
    check_split,
    equal_split,
)
from workbench.models._layers import SeparateFCs
from workbench.models._registry import register_family, register_model

if TYPE_CHECKING:
    from workbench.hierarchy import PartitionTree

#: OpenGait's strip count: 16 equal parts of the final feature map.
PAPER_PARTS = 16


def feature_height(input_height: int, strides: Sequence[int]) -> int:
    """Rows left after the stages' 3x3 convs (padding 1) with these strides."""
    height = int(input_height)
    for stride in strides:
        height = (height - 1) // int(stride) + 1
    return height


@dataclasses.dataclass(frozen=True)
class GaitBaseSpec(SpecFields):
    """A complete GaitBase architecture; the part count is derived from ``part_split``.

    ``channels``: widths of the four residual stages (the stem has the first); ``strides``: their
    strides (1 or 2); ``part_split``: the horizontal parts' heights at the final feature height, top to
    bottom (empty: 16 equal parts, as OpenGait); ``embedding_channels``: width of each part's
    embedding; ``logit_scale``: the factor on the cosine logits (OpenGait's cross-entropy scale 16).
    """

    channels: tuple[int, int, int, int] = (64, 128, 256, 512)
    strides: tuple[int, int, int, int] = (1, 2, 2, 1)
    input_height: int = 64
    part_split: tuple[int, ...] = ()
    embedding_channels: int = 256
    num_classes: int = 74
    logit_scale: float = 16.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "strides", tuple(int(s) for s in self.strides))
        object.__setattr__(self, "part_split", tuple(int(s) for s in self.part_split))
        self.validate()
        if self.part_split == self._paper_split():
            # The equal strips are the default; normalising keeps equal specs equal.
            object.__setattr__(self, "part_split", ())

    @property
    def feature_height(self) -> int:
        """Height of the final feature map (16 for a 64-row input)."""
        return feature_height(self.input_height, self.strides)

    @property
    def part_list(self) -> tuple[int, ...]:
        """Row counts of the horizontal parts at the feature height."""
        return self.part_split or self._paper_split()

    @property
    def parts(self) -> int:
        """Feature parts ``p`` of the output."""
        return len(self.part_list)

    def split_lists(self) -> dict[str, list[int]]:
        """Split list per block, for logging: ``{"parts": [1, 1, ...]}``."""
        return {"parts": list(self.part_list)}

    def _paper_split(self) -> tuple[int, ...]:
        height = self.feature_height
        return equal_split(height, PAPER_PARTS) if height >= PAPER_PARTS else ()

    def validate(self) -> GaitBaseSpec:
        """Check every field; raise ``SpecError`` naming the field and the fix."""
        if len(self.channels) != 4 or min(self.channels) < 1:
            raise SpecError(f"channels={list(self.channels)}: give four positive widths, one per residual stage")
        if len(self.strides) != 4 or any(s not in (1, 2) for s in self.strides):
            raise SpecError(f"strides={list(self.strides)}: give four strides, each 1 or 2")
        if self.input_height < 1:
            raise SpecError(f"input_height={self.input_height}: must be >= 1")
        if not self.part_split and not self._paper_split():
            raise SpecError(
                f"input_height={self.input_height}: the {self.feature_height}-row feature map cannot hold "
                f"{PAPER_PARTS} equal parts; give part_split explicitly or build the spec with GaitBaseSpec.from_tree"
            )
        check_split(self.part_list, self.feature_height, "part_split")
        if self.embedding_channels < 1 or self.num_classes < 1:
            raise SpecError(
                f"embedding_channels={self.embedding_channels}, num_classes={self.num_classes}: both must be >= 1"
            )
        if not self.logit_scale > 0:
            raise SpecError(f"logit_scale={self.logit_scale}: must be > 0")
        return self

    @classmethod
    def from_tree(
        cls, tree: PartitionTree | str, parts: int = PAPER_PARTS, *, input_height: int | None = None, **fields: Any
    ) -> GaitBaseSpec:
        """A spec whose ``parts`` horizontal parts are ``tree.cut(parts)`` rescaled to the feature height.

        ``tree`` is a ``PartitionTree`` or a name for ``load_tree``; ``input_height`` defaults to the
        tree's row count; ``fields`` are other spec fields. Example:
        ``GaitBaseSpec.from_tree("casia-b-paper", parts=4)`` pools rows ``[2, 8, 4, 2]`` of 16.
        """
        from workbench.hierarchy import load_tree, rescale_splits

        if isinstance(tree, str):
            tree = load_tree(tree)
        height = int(tree.n_rows if input_height is None else input_height)
        rows = feature_height(height, fields.get("strides", cls.strides))
        try:
            (split,) = rescale_splits([tree.cut(int(parts))], rows)
        except ValueError as exc:
            raise SpecError(f"tree {getattr(tree, 'name', '') or 'given'} cut at {parts} parts: {exc}") from exc
        return cls(input_height=height, part_split=tuple(split), **fields)


class BasicBlock(nn.Module):
    """ResNet's basic block on 2D maps: two 3x3 convs with BatchNorm, a projected shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x: [frames, c_in, h, w]`` -> ``[frames, c_out, h', w']``."""
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class GaitBase(GaitModel):
    """GaitBase: per-frame residual network, temporal max, part pooling, separate FCs and a BNNeck.

    ``forward(x: [n, s, h, w], seqL: int64 [n] | None) -> ModelOutput``: ``embeddings`` and
    ``inference`` are the separate FCs' output ``[n, embedding_channels, parts]``; ``logits`` are
    ``logit_scale`` x cosine similarities of the BNNeck features to the class weights,
    ``[n, num_classes, parts]``. Only a sequence's own frames reach the network, so BatchNorm's
    training statistics never see padding.
    """

    def __init__(self, spec: GaitBaseSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        widths = spec.channels
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, 1, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        inputs = (widths[0], *widths[:-1])
        self.stages = nn.Sequential(
            *(BasicBlock(c_in, c_out, stride) for c_in, c_out, stride in zip(inputs, widths, spec.strides, strict=True))
        )
        self.fcs = SeparateFCs(spec.parts, widths[-1], spec.embedding_channels)
        self.bnneck = nn.BatchNorm1d(spec.embedding_channels * spec.parts)
        # Class weights per part, [parts, embedding_channels, classes]; the head L2-normalises them.
        self.classifier = SeparateFCs(spec.parts, spec.embedding_channels, spec.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenGait's initialisation: xavier-uniform convs and part weights, BN weight ~ N(1, 0.02), zero biases."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
            elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)
        nn.init.xavier_uniform_(self.fcs.fc_bin)
        nn.init.xavier_uniform_(self.classifier.fc_bin)

    def _frames(self, x: torch.Tensor, seqL: torch.Tensor | None) -> tuple[torch.Tensor, list[int] | None]:
        """The valid frames of ``x: [n, s, h, w]`` as ``[frames, 1, h, w]`` and the frames per sequence."""
        if x.dim() != 4:
            raise ValueError(f"GaitBase input: expected [n, s, h, w], got shape {tuple(x.shape)}")
        n, s, h = x.shape[:3]
        if h != self.spec.input_height:
            raise ValueError(
                f"GaitBase input: height {h} does not match the spec's input_height {self.spec.input_height}; "
                "cut/resize the silhouettes or build the spec for this height"
            )
        if s < 1:
            raise ValueError("GaitBase input: a batch needs at least one frame per sequence")
        if seqL is not None:
            lengths = [int(v) for v in torch.as_tensor(seqL).reshape(-1).tolist()]
            if len(lengths) != n:
                raise ValueError(f"GaitBase input: seqL has {len(lengths)} lengths for a batch of {n} sequences")
            if lengths and (min(lengths) < 1 or max(lengths) > s):
                raise ValueError(f"GaitBase input: seqL must lie in 1..{s} (the batch's frame count), got {lengths}")
            if any(length != s for length in lengths):
                valid = torch.cat([x[i, :length] for i, length in enumerate(lengths)])
                return valid.unsqueeze(1), lengths
        return x.reshape(n * s, 1, *x.shape[2:]), None

    def pool_parts(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled parts: ``x: [n, s, h, w]`` -> ``[n, channels[-1], parts]`` (mean + max over each part)."""
        frames, lengths = self._frames(x, seqL)
        maps = self.stages(self.stem(frames))  # [frames, c, h', w']
        if lengths is None:
            pooled = maps.reshape(x.shape[0], x.shape[1], *maps.shape[1:]).amax(dim=1)
        else:
            pooled = torch.stack([sequence.amax(dim=0) for sequence in torch.split(maps, lengths)])
        parts = [region.flatten(2) for region in torch.split(pooled, list(self.spec.part_list), dim=2)]
        return torch.stack([region.mean(-1) + region.amax(-1) for region in parts], dim=-1)

    def forward_features(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """Part embeddings: the pooled parts through the separate FCs, ``[n, embedding_channels, parts]``."""
        return self.fcs(self.pool_parts(x, seqL))

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features: [n, e, p]`` -> ``(embeddings [n, e, p], logits [n, classes, p])``: the features and
        the BNNeck's cosine logits."""
        neck = self.bnneck(features.flatten(1)).view_as(features)
        cosines = torch.einsum("nep,pek->nkp", F.normalize(neck, dim=1), F.normalize(self.classifier.fc_bin, dim=1))
        return features, self.spec.logit_scale * cosines


GAITBASE_SPEC = GaitBaseSpec()
# Narrow enough for CPU studies and the tiny synthetic set.
GAITBASE_SMALL_SPEC = GaitBaseSpec(channels=(8, 16, 32, 64), embedding_channels=64)
PRESETS = {"gaitbase": GAITBASE_SPEC, "gaitbase-small": GAITBASE_SMALL_SPEC}


def _spec(name: str, tree: PartitionTree | str | None, parts: int | None, overrides: Mapping[str, Any]) -> GaitBaseSpec:
    """The preset ``name`` with overrides; its parts re-cut when a tree, a part count or a new shape is given."""
    base = PRESETS[name]
    recut = tree is not None or parts is not None or bool({"input_height", "strides"} & set(overrides))
    if recut and "part_split" in overrides:
        raise ValueError(f"{name}: give either part_split or tree/parts, not both")
    try:
        if recut:
            shape = base.merge({k: overrides[k] for k in ("input_height", "strides") if k in overrides})
            count = int(parts if parts is not None else len(base.part_list))
            if tree is None:
                split = equal_split(feature_height(shape.input_height, shape.strides), count)
            else:
                split = GaitBaseSpec.from_tree(tree, count, input_height=shape.input_height,
                                               strides=shape.strides).part_list
            overrides = {**overrides, "part_split": list(split)}
        return base.merge(overrides)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


def _cut(name: str, cut: TreeCut, num_classes: int | None, options: Mapping[str, Any]) -> GaitBaseSpec:
    """The preset with its parts from the finest cut (GaitBase pools one level; ``fta`` is HSTL's)."""
    overrides = {**options, **({} if num_classes is None else {"num_classes": num_classes})}
    if cut.channels is not None:
        overrides["channels"] = list(cut.channels)
    return _spec(name, cut.tree, cut.cuts[-1] if cut.cuts else None, overrides)


def _levels(cuts: Sequence[int]) -> list[int]:
    """One pooled level: the finest cut."""
    return [int(cuts[-1])] if cuts else []


def _narrow(spec: GaitBaseSpec) -> dict[str, Any]:
    """Widths 4-8 and 6-wide embeddings; strides and parts unchanged."""
    return {"channels": [4, 4, 8, 8], "embedding_channels": 6}


GAITBASE_FAMILY = register_family(
    ModelFamily(
        name="gaitbase",
        spec_type=GaitBaseSpec,
        build=GaitBase,
        cut=_cut,
        levels=_levels,
        narrow=_narrow,
        description="GaitBase (OpenGait, CVPR 2023): 2D residual frames, temporal max, part pooling, BNNeck",
    )
)


@register_model("gaitbase", family="gaitbase")
def gaitbase(tree: PartitionTree | str | None = None, parts: int | None = None, **overrides: Any) -> GaitBase:
    """GaitBase for 64x44 input: residual widths [64, 128, 256, 512], 16 parts, 256-wide embeddings, 74 classes.

    ``tree`` (a PartitionTree or name) with ``parts`` cuts the horizontal parts from the tree; without a
    tree they are equal. Other keywords replace spec fields (e.g. ``num_classes``).
    """
    return GaitBase(_spec("gaitbase", tree, parts, overrides))


@register_model("gaitbase-small", family="gaitbase")
def gaitbase_small(tree: PartitionTree | str | None = None, parts: int | None = None, **overrides: Any) -> GaitBase:
    """A narrow GaitBase for CPU studies: residual widths [8, 16, 32, 64], 16 parts, 64-wide embeddings."""
    return GaitBase(_spec("gaitbase-small", tree, parts, overrides))
