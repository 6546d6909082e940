"""Peak memory of one step, measured in a fresh process on CPU (and by the allocator on CUDA)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from workbench.cost import ModelRecipe, measure_peak_memory

_CONV = ModelRecipe(
    "torch.nn:Conv3d", {"in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1}, label="conv"
)


def test_step_memory_grows_with_the_input() -> None:
    small = measure_peak_memory(_CONV, (1, 1, 8, 32, 22), threads=1)
    # The output alone is 16 x 96 x 128 x 88 float32 = 66 MiB.
    big = measure_peak_memory(_CONV, (1, 1, 96, 128, 88), threads=1)
    for result in (small, big):
        assert result.device == "cpu"
        assert result.method.startswith("process-rss")
        assert result.threads == 1
        assert result.peak_mb >= result.baseline_mb > 0
    assert big.input_shape == (1, 1, 96, 128, 88)
    assert big.delta_mb >= 60
    assert big.delta_mb > small.delta_mb + 50
    assert big.peak_mb > small.peak_mb


def test_recipe_round_trips_through_json() -> None:
    text = _CONV.to_json()
    assert json.loads(text)["factory"] == "torch.nn:Conv3d"
    assert ModelRecipe.from_json(text) == _CONV
    assert isinstance(ModelRecipe.from_json(text).build(), nn.Conv3d)


def test_recipe_rejects_non_json_arguments_and_bad_references() -> None:
    with pytest.raises(ValueError, match="plain JSON"):
        ModelRecipe("torch.nn:Linear", {"in_features": torch.tensor(3)})
    with pytest.raises(ValueError, match=r"package\.module:name"):
        ModelRecipe("torch.nn.Linear")
    with pytest.raises(ValueError, match="unknown key"):
        ModelRecipe.from_json('{"factory": "torch.nn:Linear", "weights": []}')
    with pytest.raises(ValueError, match="has no attribute"):
        ModelRecipe("torch.nn:NoSuchLayer").build()


def test_worker_errors_reach_the_caller() -> None:
    broken = ModelRecipe("torch.nn:Linear", {"in_features": 3, "out_features": 2}, label="linear")
    with pytest.raises(RuntimeError, match=r"memory probe for linear failed: .*shapes cannot be multiplied"):
        measure_peak_memory(broken, (2, 5), threads=1)


def test_live_module_on_cpu_is_refused() -> None:
    with pytest.raises(TypeError, match="fresh process"):
        measure_peak_memory(nn.Linear(3, 3), (2, 3))


@pytest.mark.cuda
def test_cuda_allocator_peak_grows_with_the_input() -> None:
    small = measure_peak_memory(_CONV, (1, 1, 8, 32, 22), device="cuda")
    big = measure_peak_memory(_CONV, (1, 1, 96, 128, 88), device="cuda")
    assert small.method == big.method == "cuda-allocator"
    assert big.delta_mb >= 60 > small.delta_mb


def test_autocast_reaches_the_probe_process() -> None:
    # The output dominates: 16 x 96 x 128 x 88 values, 66 MiB in float32 and half that in bf16.
    full = measure_peak_memory(_CONV, (1, 1, 96, 128, 88), threads=1)
    half = measure_peak_memory(_CONV, (1, 1, 96, 128, 88), threads=1, amp="bf16")
    assert half.delta_mb < 0.75 * full.delta_mb
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure_peak_memory(_CONV, (1, 1, 8, 8, 8), amp="fp16")
