"""The registered HSTL models: the three public presets and a small variant for CPU studies."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.models._hstl import HSTL
from workbench.models._registry import register_model
from workbench.models._spec import HSTLSpec, StageSpec

CASIA_B_SPEC = HSTLSpec(
    stem_channels=(32,),
    first_split=(64,),
    stages=(
        StageSpec(channels=(32, 64), split=(40, 24), fta=True),
        StageSpec(channels=(128, 128), split=(8, 32, 16, 8), project=False),
    ),
    astp_channels=128,
    num_classes=74,
)

OUMVLP_SPEC = HSTLSpec(
    stem_channels=(32, 32),
    first_split=(64,),
    downsample_before=(0,),
    stages=(
        StageSpec(channels=(64, 64), split=(4, 24, 4), fta=True),
        StageSpec(channels=(128, 128), split=(4, 4, 12, 8, 4)),
        StageSpec(channels=(256, 256), split=(4, 4, 12, 4, 4, 4), project=False),
    ),
    astp_channels=256,
    num_classes=5153,
)

GAIT3D_SPEC = OUMVLP_SPEC.replace(
    stages=(
        StageSpec(channels=(64, 64), split=(20, 12), fta=True),
        StageSpec(channels=(128, 128), split=(4, 16, 8, 4)),
        StageSpec(channels=(256, 256), split=(4, 4, 12, 8, 4), project=False),
    ),
    num_classes=3000,
)

# The CASIA-B paper's splits at height 64, coarse to fine.
PAPER_SPLITS = ((40, 24), (8, 32, 16, 8))
SMALL_SPEC = HSTLSpec.from_splits(PAPER_SPLITS, channels=(8, 16, 32))

PRESET_SPECS: dict[str, HSTLSpec] = {
    "hstl-casia-b": CASIA_B_SPEC,
    "hstl-oumvlp": OUMVLP_SPEC,
    "hstl-gait3d": GAIT3D_SPEC,
    "hstl-small": SMALL_SPEC,
}


def apply_overrides(spec: HSTLSpec, overrides: dict[str, Any], where: str) -> HSTLSpec:
    """``spec`` with HSTLSpec fields replaced; the error names the model the overrides were for."""
    try:
        return spec.merge(overrides)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


@register_model("hstl-casia-b")
def hstl_casia_b(**overrides: Any) -> HSTL:
    """HSTL for CASIA-B: channels [32, 64, 128], splits [40, 24] / [8, 32, 16, 8], 73 parts, 74 classes."""
    return HSTL(apply_overrides(CASIA_B_SPEC, overrides, "hstl-casia-b"))


@register_model("hstl-oumvlp")
def hstl_oumvlp(**overrides: Any) -> HSTL:
    """HSTL for OUMVLP: channels [32, 64, 128, 256], height halved, 50 parts, 5153 classes."""
    return HSTL(apply_overrides(OUMVLP_SPEC, overrides, "hstl-oumvlp"))


@register_model("hstl-gait3d")
def hstl_gait3d(**overrides: Any) -> HSTL:
    """HSTL for Gait3D/GREW: as OUMVLP with splits [20, 12] / [4, 16, 8, 4] / [4, 4, 12, 8, 4], 46 parts."""
    return HSTL(apply_overrides(GAIT3D_SPEC, overrides, "hstl-gait3d"))


@register_model("hstl-small")
def hstl_small(
    tree: Any = None,
    cuts: Sequence[int] = (2, 4),
    channels: Sequence[int] = (8, 16, 32),
    **overrides: Any,
) -> HSTL:
    """A narrow HSTL for CPU studies: channels [8, 16, 32]; splits from ``tree`` cut at ``cuts``.

    ``tree`` is a PartitionTree or a tree name (``casia-b-paper``, ``uniform-64`` ...); without one the
    CASIA-B paper splits are used. Other keyword arguments replace spec fields (e.g. ``num_classes``).
    """
    if tree is None:
        if tuple(cuts) != (2, 4):
            raise ValueError("hstl-small: choosing cuts needs a tree; pass tree='casia-b-paper' (or another) with cuts")
        spec = HSTLSpec.from_splits(PAPER_SPLITS, channels=channels)
    else:
        spec = HSTLSpec.from_tree(tree, cuts, channels=channels)
    return HSTL(apply_overrides(spec, overrides, "hstl-small"))
