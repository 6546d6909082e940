"""The HSTL family: its registration, the three public presets and a small variant for CPU studies."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from workbench.hierarchy import PAPER_CUTS
from workbench.models._family import ImportedWeights, ModelFamily, Rebuild, TreeCut
from workbench.models._registry import register_family, register_model
from workbench.models.hstl._model import HSTL
from workbench.models.hstl._opengait_export import export_opengait
from workbench.models.hstl._opengait_io import hstl_weights, resolve_tree, spec_from_state_dict
from workbench.models.hstl._spec import PAPER_CHANNELS, HSTLSpec, StageSpec

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
#: ``hstl-small``'s widths ``[stem, stage1, stage2]``: CPU-sized, the default of training and studies. Cost
#: figures and exports use the paper's ``PAPER_CHANNELS`` instead, on purpose (see there).
SMALL_CHANNELS: tuple[int, ...] = (8, 16, 32)
#: The tree ``hstl-small`` is cut from when a config names none (its cuts default to ``PAPER_CUTS``).
SMALL_TREE = "casia-b-paper"
SMALL_SPEC = HSTLSpec.from_splits(PAPER_SPLITS, channels=SMALL_CHANNELS)

PRESET_SPECS: dict[str, HSTLSpec] = {
    "hstl-casia-b": CASIA_B_SPEC,
    "hstl-oumvlp": OUMVLP_SPEC,
    "hstl-gait3d": GAIT3D_SPEC,
    "hstl-small": SMALL_SPEC,
}


def _cut(name: str, cut: TreeCut, num_classes: int | None, options: Mapping[str, Any]) -> HSTLSpec:
    """``hstl-small`` with its stages cut from a tree; the public presets keep the paper's splits."""
    HSTL_FAMILY.check_tree_model(name)
    fields: dict[str, Any] = {**options} if num_classes is None else {**options, "num_classes": num_classes}
    return HSTLSpec.from_tree(
        cut.tree if cut.tree is not None else SMALL_TREE,
        cut.cuts or PAPER_CUTS,
        channels=cut.channels or SMALL_CHANNELS,
        fta_stages=(0,) if cut.fta in (None, True) else (),
        **fields,
    )


def _levels(cuts: Sequence[int]) -> list[int]:
    """HSTL's first ASTP pools the whole body: one region before the cut stages."""
    return [1, *(int(k) for k in cuts)]


def _narrow(spec: HSTLSpec) -> dict[str, Any]:
    """Widths 4 and 6 everywhere, the splits, FTA placement and projections unchanged."""
    return {
        "stem_channels": [4] * len(spec.stem_channels),
        "stages": [
            {"channels": [4, 6], "split": list(st.split), "fta": st.fta, "project": st.project} for st in spec.stages
        ],
        "astp_channels": 6,
    }


def _export(model: Any, checkpoint: Any, model_cfg: Any, **options: Any) -> None:
    if not isinstance(model, HSTL):
        raise TypeError(f"the HSTL exporter writes HSTL networks, got {type(model).__name__}")
    export_opengait(model, checkpoint, model_cfg, **options)


def _import_weights(loaded: Mapping[str, Any], tree: Any, where: str) -> ImportedWeights | None:
    """A public HSTL checkpoint's network; its split heights come from ``tree`` or the one paper tree that fits."""
    weights = hstl_weights(loaded)
    if weights is None:
        return None
    chosen = resolve_tree(weights, tree, where=where)
    model = HSTL(spec_from_state_dict(weights, tree=chosen, where=where))
    model.load_state_dict(weights)
    return ImportedWeights(model, chosen, _rebuilds(model.spec, chosen))


def _rebuilds(spec: HSTLSpec, tree: Any) -> tuple[Rebuild, ...]:
    """``hstl-small`` cut from ``tree`` when it is a preset, then a registered HSTL with every spec field."""
    from workbench.hierarchy import list_presets, preset_tree

    rebuilds = []
    fta = [i for i, stage in enumerate(spec.stages) if stage.fta]
    if tree.name in list_presets() and tree == preset_tree(tree.name) and fta in ([], [0]):
        options: dict[str, Any] = {
            "input_height": spec.input_height,
            "stem_convs": len(spec.stem_channels),
            "downsample_before": list(spec.downsample_before),
            "astp_channels": spec.astp_channels,
            "project_last": spec.stages[-1].project,
            "hpp_rows": spec.hpp_rows,
        }
        defaults = {"input_height": tree.n_rows, "stem_convs": 1, "downsample_before": [],
                    "astp_channels": spec.stages[-1].channels[1], "project_last": False, "hpp_rows": None}
        cut = TreeCut(
            tree=tree.name,
            cuts=tuple(len(stage.split) for stage in spec.stages),
            channels=(spec.stem_channels[0], *(stage.channels[1] for stage in spec.stages)),
            fta=bool(fta),
        )
        rebuilds.append(Rebuild("hstl-small", cut, {k: v for k, v in options.items() if v != defaults[k]}))
    # Any other network: a registered HSTL carrying every spec field, so no tree file is needed.
    overrides = spec.to_dict()
    overrides.pop("num_classes")
    rebuilds.append(Rebuild("hstl-casia-b", None, overrides))
    return tuple(rebuilds)


HSTL_FAMILY = register_family(
    ModelFamily(
        name="hstl",
        spec_type=HSTLSpec,
        build=HSTL,
        cut=_cut,
        levels=_levels,
        narrow=_narrow,
        description="HSTL (ICCV 2023): ARME stages over nested height regions, ASTP, FTA, GeM-HPP",
        export=_export,
        import_weights=_import_weights,
        import_hint="a public HSTL checkpoint (no 'arme1.<i>.conv3d.weight' and 'Head0.fc_bin' weights)",
        tree_models=("hstl-small",),
        default_cuts=PAPER_CUTS,
        paper_channels=PAPER_CHANNELS,
    )
)


def _with_overrides(spec: HSTLSpec, overrides: dict[str, Any], where: str) -> HSTLSpec:
    """``spec`` with HSTLSpec fields replaced; the error names the model the overrides were for."""
    try:
        return spec.merge(overrides)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


@register_model("hstl-casia-b", family="hstl")
def hstl_casia_b(**overrides: Any) -> HSTL:
    """HSTL for CASIA-B: channels [32, 64, 128], splits [40, 24] / [8, 32, 16, 8], 73 parts, 74 classes."""
    return HSTL(_with_overrides(CASIA_B_SPEC, overrides, "hstl-casia-b"))


@register_model("hstl-oumvlp", family="hstl")
def hstl_oumvlp(**overrides: Any) -> HSTL:
    """HSTL for OUMVLP: channels [32, 64, 128, 256], height halved, 50 parts, 5153 classes."""
    return HSTL(_with_overrides(OUMVLP_SPEC, overrides, "hstl-oumvlp"))


@register_model("hstl-gait3d", family="hstl")
def hstl_gait3d(**overrides: Any) -> HSTL:
    """HSTL for Gait3D/GREW: as OUMVLP with splits [20, 12] / [4, 16, 8, 4] / [4, 4, 12, 8, 4], 46 parts."""
    return HSTL(_with_overrides(GAIT3D_SPEC, overrides, "hstl-gait3d"))


@register_model("hstl-small", family="hstl")
def hstl_small(
    tree: Any = None,
    cuts: Sequence[int] = PAPER_CUTS,
    channels: Sequence[int] = SMALL_CHANNELS,
    **overrides: Any,
) -> HSTL:
    """A narrow HSTL for CPU studies: channels [8, 16, 32]; splits from ``tree`` cut at ``cuts``.

    ``tree`` is a PartitionTree or a tree name (``casia-b-paper``, ``uniform-64`` ...); without one the
    CASIA-B paper splits are used. Other keyword arguments replace spec fields (e.g. ``num_classes``).
    """
    if tree is None:
        if tuple(cuts) != PAPER_CUTS:
            raise ValueError("hstl-small: choosing cuts needs a tree; pass tree='casia-b-paper' (or another) with cuts")
        spec = HSTLSpec.from_splits(PAPER_SPLITS, channels=channels)
    else:
        spec = HSTLSpec.from_tree(tree, cuts, channels=channels)
    return HSTL(_with_overrides(spec, overrides, "hstl-small"))
