"""Cost of the HSTL presets and of specs built from trees, against the reference figures."""

from __future__ import annotations

import time

import pytest

from workbench.cost import ModelRecipe, count_flops, count_parameters, estimate_cost, measure_peak_memory
from workbench.models import CASIA_B_SPEC, HSTLSpec, build_model, create_model


@pytest.mark.parametrize(
    ("name", "params"),
    [("hstl-casia-b", 4_745_834), ("hstl-oumvlp", 89_103_603), ("hstl-gait3d", 54_719_087)],
)
def test_preset_parameter_counts_match_the_reference(name: str, params: int) -> None:
    report = estimate_cost(name, measure=("params",))
    assert report.params == params
    assert sum(report.params_by_module.values()) == params


def test_casia_b_breakdown_matches_the_reference() -> None:
    report = estimate_cost("hstl-casia-b", measure=("params", "flops"))
    by_module = report.params_by_module
    assert by_module["Head0"] == 1_196_032
    assert by_module["Head1"] == 691_456
    backbone = report.params - by_module["Head0"] - by_module["Head1"] - by_module["Bn"]  # type: ignore[operator]
    assert backbone == 2_858_090
    assert report.gflops == pytest.approx(51.65, abs=0.01)
    assert report.gflops_by_module["arme3"] == pytest.approx(37.4, abs=0.05)
    assert report.gflops_by_module["arme2"] == pytest.approx(14.0, abs=0.05)


def test_flops_scale_with_frames() -> None:
    assert count_flops("hstl-casia-b", frames=100).gflops == pytest.approx(170.6, abs=0.05)


def test_params_and_flops_are_quick_once_torch_is_warm() -> None:
    estimate_cost("hstl-small", measure=("params", "flops"))  # pays torch's one-time imports
    start = time.perf_counter()
    estimate_cost("hstl-casia-b", measure=("params", "flops"))
    # Loose bound for a loaded CI machine; the 2 s target is asserted in tests/benchmarks.
    assert time.perf_counter() - start < 10


def test_spec_recipe_rebuilds_the_same_model() -> None:
    spec = HSTLSpec.from_tree("casia-b-paper", (2, 4), channels=(8, 16, 32), num_classes=10)
    recipe = ModelRecipe.from_json(ModelRecipe.from_spec(spec).to_json())
    assert recipe.label == "HSTLSpec[64/40-24/8-32-16-8]"
    direct = count_parameters(build_model(spec)).total
    assert count_parameters(recipe.build()).total == direct
    assert estimate_cost(spec, measure=("params",)).params == direct


def test_casia_b_spec_counts_like_the_registry_name() -> None:
    assert count_flops(CASIA_B_SPEC).total == count_flops("hstl-casia-b").total
    assert count_parameters(create_model("hstl-casia-b", num_classes=10)).total == estimate_cost(
        ModelRecipe.from_name("hstl-casia-b", num_classes=10), measure=("params",)
    ).params


def test_tree_built_spec_memory_is_measured_in_a_fresh_process() -> None:
    spec = HSTLSpec.from_tree("uniform-64", (2, 4), channels=(4, 8, 8), num_classes=5)
    memory = measure_peak_memory(spec, (1, 6, 64, 44), mode="train", threads=1)
    assert memory.method.startswith("process-rss")
    assert memory.delta_mb > 0
    assert memory.peak_mb > memory.baseline_mb
