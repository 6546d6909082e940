"""HSTLSpec: derived parts, validation errors, dict round-trip, building from split lists and trees."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workbench.config import ConfigError, flatten
from workbench.models import (
    CASIA_B_SPEC,
    GAIT3D_SPEC,
    OUMVLP_SPEC,
    HSTLSpec,
    SpecError,
    StageSpec,
)


def test_parts_and_heights_are_derived() -> None:
    assert CASIA_B_SPEC.parts == 1 + 2 + 2 + 4 + 64
    assert OUMVLP_SPEC.parts == 1 + 3 + 3 + 5 + 6 + 32
    assert GAIT3D_SPEC.parts == 1 + 2 + 2 + 4 + 5 + 32
    assert OUMVLP_SPEC.stage_heights() == [32, 32, 32]
    assert CASIA_B_SPEC.stage_heights() == [64, 64]
    assert CASIA_B_SPEC.replace(hpp_rows=16).parts == 1 + 2 + 2 + 4 + 16


def test_split_lists_for_logging() -> None:
    assert CASIA_B_SPEC.split_lists() == {"astp1": [64], "stage2": [40, 24], "stage3": [8, 32, 16, 8]}


@pytest.mark.parametrize("spec", [CASIA_B_SPEC, OUMVLP_SPEC, GAIT3D_SPEC], ids=["casia", "oumvlp", "gait3d"])
def test_dict_round_trip_through_json(spec: HSTLSpec) -> None:
    data = json.loads(json.dumps(spec.to_dict()))
    assert HSTLSpec.from_dict(data) == spec
    flat = flatten(spec)
    assert flat["num_classes"] == spec.num_classes


def test_from_dict_rejects_unknown_keys() -> None:
    data = CASIA_B_SPEC.to_dict() | {"depth": 3}
    with pytest.raises(ConfigError, match="depth"):
        HSTLSpec.from_dict(data)


def _stages(*splits: tuple[int, ...]) -> tuple[StageSpec, ...]:
    return tuple(StageSpec(channels=(8, 8), split=s, project=i < len(splits) - 1) for i, s in enumerate(splits))


def test_split_not_summing_to_the_stage_height_is_named() -> None:
    with pytest.raises(SpecError, match=r"stages\[0\]\.split \[40, 20\] sums to 60 rows .* height there is 64"):
        HSTLSpec(stages=_stages((40, 20), (64,)), astp_channels=8)


def test_downsampling_halves_the_expected_height() -> None:
    with pytest.raises(SpecError, match=r"stages\[0\]\.split \[40, 24\] sums to 64 rows .* height there is 32"):
        HSTLSpec(stages=_stages((40, 24), (64,)), astp_channels=8, downsample_before=(0,))
    spec = HSTLSpec(stages=_stages((20, 12), (4, 16, 8, 4)), astp_channels=8, downsample_before=(0,))
    assert spec.final_height == 32


def test_non_nested_cuts_are_rejected() -> None:
    with pytest.raises(SpecError, match=r"stages\[1\]\.split \[32, 32\] does not refine the previous split \[40, 24\]"):
        HSTLSpec(stages=_stages((40, 24), (32, 32)), astp_channels=8)


def test_empty_regions_and_empty_splits_are_rejected() -> None:
    with pytest.raises(SpecError, match="empty region"):
        HSTLSpec(stages=_stages((64, 0)), astp_channels=8)
    with pytest.raises(SpecError, match="is empty"):
        HSTLSpec(stages=_stages(()), astp_channels=8)
    with pytest.raises(SpecError, match="stages is empty"):
        HSTLSpec(stages=())


def test_other_field_errors() -> None:
    with pytest.raises(SpecError, match="hpp_rows=5: must divide"):
        CASIA_B_SPEC.replace(hpp_rows=5)
    with pytest.raises(SpecError, match="project=false needs channels"):
        CASIA_B_SPEC.replace(astp_channels=64)
    with pytest.raises(SpecError, match="downsample_before"):
        CASIA_B_SPEC.replace(downsample_before=(2,))
    with pytest.raises(SpecError, match="stem_channels"):
        CASIA_B_SPEC.replace(stem_channels=(8, 8, 8))


def test_validate_against_an_input_height() -> None:
    CASIA_B_SPEC.validate(64)
    with pytest.raises(SpecError, match=r"first_split \[64\] sums to 64 rows but the feature height there is 128"):
        CASIA_B_SPEC.validate(128)


def test_from_splits_builds_the_casia_b_preset() -> None:
    spec = HSTLSpec.from_splits([[40, 24], [8, 32, 16, 8]], channels=(32, 0, 0), stage_channels=[(32, 64), (128, 128)])
    assert spec == CASIA_B_SPEC


def test_from_splits_channel_count_errors() -> None:
    with pytest.raises(SpecError, match="give 3 widths"):
        HSTLSpec.from_splits([[40, 24], [8, 32, 16, 8]], channels=(8, 16))


@pytest.fixture
def hierarchy() -> Any:
    return pytest.importorskip("workbench.hierarchy", reason="workbench.hierarchy is not available")


def test_from_tree_reproduces_the_casia_b_preset(hierarchy: Any) -> None:
    tree = hierarchy.load_tree("casia-b-paper")
    spec = HSTLSpec.from_tree(tree, cuts=(2, 4), channels=(32,), stage_channels=[(32, 64), (128, 128)])
    assert spec == CASIA_B_SPEC


@pytest.mark.parametrize(("tree", "cuts", "preset"), [("oumvlp-paper", (3, 5, 6), OUMVLP_SPEC),
                                                      ("gait3d-paper", (2, 4, 5), GAIT3D_SPEC)])
def test_from_tree_reproduces_the_downsampled_presets(
    hierarchy: Any, tree: str, cuts: tuple[int, ...], preset: HSTLSpec
) -> None:
    spec = HSTLSpec.from_tree(
        tree, cuts=cuts, channels=(32, 64, 128, 256), stem_convs=2, input_height=64, downsample_before=(0,),
        num_classes=preset.num_classes,
    )
    assert spec == preset


def test_from_tree_rescales_to_each_stage_height_and_stays_nested(hierarchy: Any) -> None:
    tree = hierarchy.load_tree("casia-b-paper")
    spec = HSTLSpec.from_tree(tree, cuts=(2, 4, 8), channels=(8, 8, 8, 8), input_height=128, downsample_before=(1,))
    heights = spec.stage_heights()
    assert heights == [128, 64, 64]
    assert [sum(st.split) for st in spec.stages] == heights
    assert [len(st.split) for st in spec.stages] == [2, 4, 8]
    assert spec.stages[0].split == (80, 48)  # [40, 24] doubled for the 128-row input
    assert hierarchy.is_nested([st.split for st in spec.stages[1:]])


def test_from_tree_errors(hierarchy: Any) -> None:
    tree = hierarchy.load_tree("casia-b-paper")
    with pytest.raises(SpecError, match="must not decrease"):
        HSTLSpec.from_tree(tree, cuts=(4, 2))
    with pytest.raises(SpecError, match="cannot be halved"):
        HSTLSpec.from_tree(tree, cuts=(2, 4), input_height=66, downsample_before=(0, 1))
