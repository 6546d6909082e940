"""Latency: positive medians, the requested number of timed runs, modes and devices."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.cost import measure_latency


def _stack() -> nn.Module:
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1, bias=False), nn.LeakyReLU(), nn.Conv3d(4, 4, 3, padding=1))


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_positive_ordered_statistics_over_requested_repeats(mode: str) -> None:
    stats = measure_latency(_stack(), (1, 1, 6, 16, 12), warmup=1, repeats=4, mode=mode)
    assert stats.repeats == len(stats.samples_ms) == 4
    assert all(s > 0 for s in stats.samples_ms)
    assert 0 < stats.p10_ms <= stats.median_ms <= stats.p90_ms
    assert min(stats.samples_ms) <= stats.median_ms <= max(stats.samples_ms)
    assert stats.mode == mode
    assert stats.device == "cpu"
    assert stats.input_shape == (1, 1, 6, 16, 12)
    assert stats.threads == torch.get_num_threads()


def test_bigger_input_takes_longer() -> None:
    model = _stack()
    small = measure_latency(model, (1, 1, 2, 8, 8), repeats=3)
    big = measure_latency(model, (1, 1, 32, 64, 44), repeats=3)
    assert big.median_ms > small.median_ms


def test_train_step_leaves_the_model_as_found() -> None:
    model = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.BatchNorm3d(4)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    measure_latency(model, (2, 1, 4, 8, 8), repeats=2, mode="train")
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    for name, value in model.state_dict().items():  # BatchNorm running statistics included
        assert torch.equal(value, before[name]), name


def test_inference_counts_steps_without_building_a_graph() -> None:
    calls: list[bool] = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            calls.append(torch.is_inference_mode_enabled())
            return self.fc(x)

    measure_latency(Probe(), (2, 3), warmup=2, repeats=3)
    assert calls == [True] * 5


def test_train_mode_needs_a_differentiable_output() -> None:
    with pytest.raises(ValueError, match="no output requires grad"):
        measure_latency(nn.Identity(), (2, 3), repeats=1, mode="train")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"mode": "eval"}, "mode='eval'"),
        ({"repeats": 0}, "repeats=0"),
        ({"warmup": -1}, "warmup=-1"),
        ({"device": "tpu"}, "device='tpu'"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        measure_latency(nn.Linear(3, 3), (2, 3), **kwargs)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown on machines without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        measure_latency(nn.Linear(3, 3), (2, 3), device="cuda")


@pytest.mark.cuda
def test_cuda_latency_is_synchronised_and_positive() -> None:
    model = _stack()
    stats = measure_latency(model, (1, 1, 8, 32, 22), device="cuda", repeats=3)
    assert stats.device.startswith("cuda")
    assert stats.median_ms > 0
    assert next(model.parameters()).device.type == "cpu"


def test_meta_model_cannot_be_timed() -> None:
    with torch.device("meta"):
        model = nn.Linear(3, 3)
    with pytest.raises(ValueError, match="meta device"):
        measure_latency(model, (2, 3))


@pytest.mark.parametrize("mode", ["inference", "train"])
def test_autocast_runs_the_forward_in_the_requested_precision(mode: str) -> None:
    model = _stack()
    seen: list[torch.dtype] = []
    model[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    stats = measure_latency(model, (1, 1, 4, 8, 8), warmup=0, repeats=2, mode=mode, amp="bf16")
    assert stats.amp == "bf16" and seen == [torch.bfloat16, torch.bfloat16]
    seen.clear()
    assert measure_latency(model, (1, 1, 4, 8, 8), warmup=0, repeats=1, mode=mode).amp == "off"
    assert seen == [torch.float32]


def test_autocast_choices_are_checked_before_any_step() -> None:
    with pytest.raises(ValueError, match="needs a CUDA device"):
        measure_latency(_stack(), (1, 1, 4, 8, 8), amp="fp16")
    with pytest.raises(ValueError, match="off, bf16, fp16"):
        measure_latency(_stack(), (1, 1, 4, 8, 8), amp="int8")
