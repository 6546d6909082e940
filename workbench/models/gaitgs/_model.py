"""GaitGS (granularity and span temporal features) built from a ``GaitGSSpec``, and its registered presets.

Two temporal granularities (a fine branch over frames, a coarse one over 3-frame units fed from the
fine branch at every stage) and two spans per branch (local per-part Conv1d attention, global
Transformer over each part's frames with a predicted-view prior). Beyond the paper, the horizontal
parts and the per-strip block's strips can come from a ``PartitionTree`` cut (``GaitGSSpec.from_tree``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
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
from workbench.models._layers import SeparateFCs, temporal_max
from workbench.models._output import ModelOutput
from workbench.models._registry import register_family, register_model
from workbench.models.gaitgs._layers import (
    GaitGSStem,
    GlobalSpan,
    LocalSpan,
    PartPooling,
    StripStage,
    UnitConv,
    ViewPrior,
    prepare_silhouettes,
    unit_lengths,
)

if TYPE_CHECKING:
    from workbench.hierarchy import PartitionTree

#: The paper's strip count of the per-strip conv block and part count of the horizontal pooling.
PAPER_STRIPS = 8
PAPER_PARTS = 32


@dataclasses.dataclass(frozen=True)
class GaitGSSpec(SpecFields):
    """A complete GaitGS architecture; the part count is derived, never typed by hand.

    ``channels``: widths of the stem and the two stages. ``block_splits``: the strips of the per-strip
    conv block at stage 1 (input height) and stage 2 (half height, after a (1, 2, 2) max-pool); empty
    means the paper's 8 equal strips. ``part_split``: the horizontal parts at the final feature height
    (half the input height); empty means the paper's 32 equal parts. ``num_views``: classes of the view
    classifier. ``num_classes``: identity classes of an optional per-part classifier over the
    embeddings (0: none, as in the paper, which trains with triplet + view losses only). The global
    span is a pre-norm Transformer (``depth`` layers, ``heads``, ``ff_channels``, ``dropout``) with a
    depthwise Conv1d of ``position_kernel`` frames as positional encoding.
    """

    channels: tuple[int, int, int] = (32, 64, 128)
    input_height: int = 64
    block_splits: tuple[tuple[int, ...], ...] = ()
    part_split: tuple[int, ...] = ()
    num_views: int = 11
    num_classes: int = 0
    out_channels: int = 256
    depth: int = 3
    heads: int = 8
    ff_channels: int = 256
    dropout: float = 0.2
    position_kernel: int = 7
    squeeze: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "block_splits", tuple(tuple(int(s) for s in split) for split in self.block_splits))
        object.__setattr__(self, "part_split", tuple(int(s) for s in self.part_split))
        self.validate()
        # The paper's equal splits are the default; normalising keeps equal specs equal.
        if self.block_splits == self._paper_block_splits():
            object.__setattr__(self, "block_splits", ())
        if self.part_split == self._paper_part_split():
            object.__setattr__(self, "part_split", ())

    # -- derived sizes -------------------------------------------------------------------------

    @property
    def feature_height(self) -> int:
        """Height of the final feature map (half the input height)."""
        return self.input_height // 2

    @property
    def stage_splits(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Strips of the per-strip block at stage 1 (input height) and stage 2 (feature height)."""
        splits = self.block_splits or self._paper_block_splits()
        return splits[0], splits[1]

    @property
    def part_list(self) -> tuple[int, ...]:
        """Row counts of the horizontal parts at the feature height."""
        return self.part_split or self._paper_part_split()

    @property
    def parts(self) -> int:
        """Feature parts ``p`` of the output: the horizontal parts of both branches."""
        return 2 * len(self.part_list)

    def split_lists(self) -> dict[str, list[int]]:
        """Split list per block, for logging: ``{"block1": [8, ...], "block2": [4, ...], "parts": [1, ...]}``."""
        first, second = self.stage_splits
        return {"block1": list(first), "block2": list(second), "parts": list(self.part_list)}

    def _paper_block_splits(self) -> tuple[tuple[int, ...], ...]:
        if self.input_height % 2 or self.feature_height % PAPER_STRIPS:
            return ()
        return (equal_split(self.input_height, PAPER_STRIPS), equal_split(self.feature_height, PAPER_STRIPS))

    def _paper_part_split(self) -> tuple[int, ...]:
        if self.input_height % 2 or self.feature_height % PAPER_PARTS:
            return ()
        return equal_split(self.feature_height, PAPER_PARTS)

    # -- validation ---------------------------------------------------------------------------

    def validate(self) -> GaitGSSpec:
        """Check every field; raise ``SpecError`` naming the field and the fix."""
        if len(self.channels) != 3 or min(self.channels) < 1:
            raise SpecError(f"channels={list(self.channels)}: give three positive widths (stem, stage 1, stage 2)")
        if self.input_height < 2 or self.input_height % 2:
            raise SpecError(f"input_height={self.input_height}: must be even (the stage-2 max-pool halves it)")
        if not self.block_splits and not self._paper_block_splits():
            raise SpecError(
                f"input_height={self.input_height}: half of it is not divisible into {PAPER_STRIPS} equal strips; "
                "give block_splits explicitly or build the spec with GaitGSSpec.from_tree"
            )
        if not self.part_split and not self._paper_part_split():
            raise SpecError(
                f"input_height={self.input_height}: half of it is not divisible into {PAPER_PARTS} equal parts; "
                "give part_split explicitly or build the spec with GaitGSSpec.from_tree"
            )
        if self.block_splits and len(self.block_splits) != 2:
            raise SpecError(f"block_splits has {len(self.block_splits)} lists; give two (stage 1, stage 2) or none")
        first, second = self.stage_splits
        check_split(first, self.input_height, "block_splits[0]")
        check_split(second, self.feature_height, "block_splits[1]")
        check_split(self.part_list, self.feature_height, "part_split")
        for name in ("num_views", "out_channels", "depth", "heads", "ff_channels", "squeeze"):
            if getattr(self, name) < 1:
                raise SpecError(f"{name}={getattr(self, name)}: must be >= 1")
        if self.num_classes < 0:
            raise SpecError(f"num_classes={self.num_classes}: must be >= 0 (0: no identity classifier)")
        if self.channels[2] % self.heads:
            raise SpecError(f"heads={self.heads} must divide the Transformer width channels[2]={self.channels[2]}")
        if not 0.0 <= self.dropout < 1.0:
            raise SpecError(f"dropout={self.dropout}: must be in [0, 1)")
        if self.position_kernel < 1 or self.position_kernel % 2 == 0:
            raise SpecError(f"position_kernel={self.position_kernel}: must be odd (it keeps the frame count)")
        return self

    # -- building from a partition tree -------------------------------------------------------

    @classmethod
    def from_tree(
        cls,
        tree: PartitionTree | str,
        parts: int = PAPER_PARTS,
        strips: int = PAPER_STRIPS,
        *,
        input_height: int | None = None,
        **fields: Any,
    ) -> GaitGSSpec:
        """A spec whose ``parts`` horizontal parts and ``strips`` block strips are cuts of ``tree``.

        Both cuts are rescaled together to the feature height (so the strips stay unions of parts)
        and the stage-1 strips are those doubled; ``tree`` is a ``PartitionTree`` or a name for
        ``load_tree``; ``input_height`` defaults to the tree's row count; ``fields`` are other spec
        fields. Example: ``GaitGSSpec.from_tree("casia-b-paper", parts=16, strips=4)``.
        """
        from workbench.hierarchy import load_tree, rescale_splits

        if isinstance(tree, str):
            tree = load_tree(tree)
        height = int(tree.n_rows if input_height is None else input_height)
        parts, strips = int(parts), int(strips)
        if not 1 <= strips <= parts:
            raise SpecError(f"strips={strips}, parts={parts}: need 1 <= strips <= parts so the strips nest in the parts")
        if height < 2 or height % 2:
            raise SpecError(f"input_height={height}: must be even (the stage-2 max-pool halves it)")
        try:
            coarse, fine = rescale_splits([tree.cut(strips), tree.cut(parts)], height // 2)
        except ValueError as exc:
            raise SpecError(f"tree {getattr(tree, 'name', '') or 'given'}: {exc}") from exc
        block_splits = (tuple(2 * size for size in coarse), tuple(coarse))
        return cls(input_height=height, block_splits=block_splits, part_split=tuple(fine), **fields)


class GaitGS(GaitModel):
    """GaitGS: fine and coarse branches, local and global spans; output both branches' parts side by side.

    ``forward(x: [n, s, h, w], seqL: int64 [n] | None) -> ModelOutput``: ``embeddings`` and
    ``inference`` are ``[n, out_channels, parts]`` (fine-branch parts first), ``view_logits`` is
    ``[n, num_views]`` for the view loss, ``logits`` is ``[n, num_classes, parts]`` (empty when
    ``num_classes == 0``).
    """

    def __init__(self, spec: GaitGSSpec) -> None:
        super().__init__()
        spec.validate()
        self.spec = spec
        c0, c1, c2 = spec.channels
        first, second = spec.stage_splits
        parts = len(spec.part_list)
        self.stem = GaitGSStem(1, c0)
        self.fine1 = StripStage(c0, (c1,), first)
        self.fine2 = StripStage(c1, (c2, c2), second)
        self.coarse1 = StripStage(c0, (c1,), first)
        self.coarse2 = StripStage(c1, (c2, c2), second)
        self.unit0, self.unit1, self.unit2 = UnitConv(c0), UnitConv(c1), UnitConv(c2)
        self.view_prior = ViewPrior(2 * c2, spec.num_views, c2)
        self.pool = PartPooling(spec.part_list)
        self.local_fine = LocalSpan(c2, parts, spec.squeeze)
        self.local_coarse = LocalSpan(c2, parts, spec.squeeze)
        span: dict[str, Any] = {"depth": spec.depth, "heads": spec.heads, "ff_channels": spec.ff_channels,
                                "dropout": spec.dropout, "kernel": spec.position_kernel}
        self.global_fine = GlobalSpan(c2, parts, spec.out_channels, **span)
        self.global_coarse = GlobalSpan(c2, parts, spec.out_channels, **span)
        self.local_fc_fine = SeparateFCs(parts, c2, spec.out_channels)
        self.local_fc_coarse = SeparateFCs(parts, c2, spec.out_channels)
        self.classifier = SeparateFCs(2 * parts, spec.out_channels, spec.num_classes) if spec.num_classes else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """OpenGait's initialisation: xavier-uniform convs and linear layers, zero biases."""
        for module in self.modules():
            if isinstance(module, (nn.Conv1d, nn.Conv3d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def prepare_input(
        self, x: torch.Tensor, seqL: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Check ``x: [n, s, h, w]``; ``([n, 1, s', h, w], seqL')`` with short sequences repeated to 3+ frames."""
        return prepare_silhouettes(x, seqL, self.spec.input_height)

    def _encode(self, x: torch.Tensor, seqL: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``x: [n, s, h, w]`` -> ``(features [n, out, parts], view_logits [n, views])``."""
        x, lengths = self.prepare_input(x, seqL)
        units = unit_lengths(lengths)
        fine = self.stem(x, lengths)
        coarse = self.unit0(fine, units)
        fine = F.max_pool3d(self.fine1(fine, lengths), kernel_size=(1, 2, 2), stride=(1, 2, 2))
        coarse = F.max_pool3d(self.coarse1(coarse, units), kernel_size=(1, 2, 2), stride=(1, 2, 2))
        coarse = coarse + self.unit1(fine, units)
        fine = self.fine2(fine, lengths)
        coarse = self.coarse2(coarse, units) + self.unit2(fine, units)
        prior, view_logits = self.view_prior(fine, coarse, lengths, units)
        gait_fine = self._spans(fine, prior, lengths, self.local_fine, self.global_fine, self.local_fc_fine)
        gait_coarse = self._spans(coarse, prior, units, self.local_coarse, self.global_coarse, self.local_fc_coarse)
        return torch.cat([gait_fine, gait_coarse], dim=-1), view_logits

    def _spans(
        self,
        x: torch.Tensor,
        prior: torch.Tensor,
        lengths: torch.Tensor | None,
        local: nn.Module,
        global_span: nn.Module,
        local_fc: nn.Module,
    ) -> torch.Tensor:
        """One branch's parts: global span plus the temporal max of the local span, ``[n, out, parts]``."""
        temporal = local(self.pool(x), lengths)
        return global_span(temporal, prior, lengths) + local_fc(temporal_max(temporal, lengths))

    def forward_features(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """Part features: ``x: [n, s, h, w]`` -> ``[n, out_channels, parts]``."""
        return self._encode(x, seqL)[0]

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features: [n, c, p]`` -> ``(embeddings [n, c, p], logits [n, classes, p])``; embeddings are the features."""
        if self.classifier is None:
            return features, features.new_zeros(features.shape[0], 0, features.shape[2])
        return features, self.classifier(features)

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> ModelOutput:
        """``x: [n, s, h, w]`` in [0, 1], ``seqL: int64 [n]`` or ``None`` -> ``ModelOutput`` with ``view_logits``."""
        features, view_logits = self._encode(x, seqL)
        embeddings, logits = self.forward_head(features)
        return ModelOutput(embeddings, logits, embeddings, view_logits=view_logits)


GAITGS_SPEC = GaitGSSpec()
GAITGS_128_SPEC = GaitGSSpec(input_height=128)
# Narrow enough for CPU studies; 16 parts leave room for a tree's cut to differ from equal strips.
GAITGS_SMALL_SPEC = GaitGSSpec(
    channels=(8, 16, 32), part_split=equal_split(32, 16), out_channels=64, depth=2, heads=4, ff_channels=64
)


def _spec(
    base: GaitGSSpec,
    name: str,
    tree: PartitionTree | str | None,
    parts: int | None,
    strips: int | None,
    overrides: Mapping[str, Any],
) -> GaitGSSpec:
    """``base`` with overrides, its parts/strips re-cut when a tree, counts or a new height are given."""
    recut = tree is not None or parts is not None or strips is not None or "input_height" in overrides
    if recut and ({"block_splits", "part_split"} & set(overrides)):
        raise ValueError(f"{name}: give either block_splits/part_split or tree/parts/strips, not both")
    try:
        if recut:
            height = int(overrides.get("input_height", base.input_height))
            part_count = int(parts if parts is not None else len(base.part_list))
            strip_count = int(strips if strips is not None else len(base.stage_splits[1]))
            if tree is None:
                fine = equal_split(height // 2, part_count)
                coarse = equal_split(height // 2, strip_count)
                overrides = {**overrides, "block_splits": [[2 * s for s in coarse], list(coarse)], "part_split": list(fine)}
            else:
                cut = GaitGSSpec.from_tree(tree, part_count, strip_count, input_height=height)
                overrides = {**overrides, "block_splits": [list(s) for s in cut.stage_splits],
                             "part_split": list(cut.part_list)}
        return base.merge(overrides)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from exc


PRESETS = {"gaitgs": GAITGS_SPEC, "gaitgs-128": GAITGS_128_SPEC, "gaitgs-small": GAITGS_SMALL_SPEC}


def _cut(name: str, cut: TreeCut, num_classes: int | None, options: Mapping[str, Any]) -> GaitGSSpec:
    """The preset with its strips from the first cut and its parts from the last (``fta`` is HSTL's)."""
    overrides = {**options, **({} if num_classes is None else {"num_classes": num_classes})}
    if cut.channels is not None:
        overrides["channels"] = list(cut.channels)
    cuts = cut.cuts or ()
    return _spec(PRESETS[name], name, cut.tree, cuts[-1] if cuts else None, cuts[0] if cuts else None, overrides)


def _narrow(spec: GaitGSSpec) -> dict[str, Any]:
    """Widths 4-8, one Transformer layer of two heads, no dropout; the splits unchanged."""
    return {"channels": [4, 4, 8], "out_channels": 6, "heads": 2, "ff_channels": 8, "depth": 1, "dropout": 0.0}


GAITGS_FAMILY = register_family(
    ModelFamily(
        name="gaitgs",
        spec_type=GaitGSSpec,
        build=GaitGS,
        cut=_cut,
        levels=lambda cuts: [int(k) for k in cuts],
        narrow=_narrow,
        description="GaitGS (ICIP 2024): fine and coarse temporal branches, local and global spans",
    )
)


@register_model("gaitgs", family="gaitgs")
def gaitgs(
    tree: PartitionTree | str | None = None, parts: int | None = None, strips: int | None = None, **overrides: Any
) -> GaitGS:
    """GaitGS for 64x44 input: channels [32, 64, 128], 2 x 32 parts, 11 views, ~11.8 M parameters.

    ``tree`` (a PartitionTree or name) with ``parts``/``strips`` cuts the horizontal parts and the
    per-strip block from the tree; without a tree they are equal. Other keywords replace spec fields.
    """
    return GaitGS(_spec(GAITGS_SPEC, "gaitgs", tree, parts, strips, overrides))


@register_model("gaitgs-128", family="gaitgs")
def gaitgs_128(
    tree: PartitionTree | str | None = None, parts: int | None = None, strips: int | None = None, **overrides: Any
) -> GaitGS:
    """GaitGS for 128x88 input: as ``gaitgs``, parts pool 2 rows each of the 64-row feature map."""
    return GaitGS(_spec(GAITGS_128_SPEC, "gaitgs-128", tree, parts, strips, overrides))


@register_model("gaitgs-small", family="gaitgs")
def gaitgs_small(
    tree: PartitionTree | str | None = None, parts: int | None = None, strips: int | None = None, **overrides: Any
) -> GaitGS:
    """A narrow GaitGS for CPU studies: channels [8, 16, 32], 2 x 16 parts, Transformer d=32, 2 layers."""
    return GaitGS(_spec(GAITGS_SMALL_SPEC, "gaitgs-small", tree, parts, strips, overrides))
