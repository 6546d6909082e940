"""Forward FLOPs on the meta device, checked against hand counts (2 FLOPs per multiply-add)."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from workbench.cost import ModelRecipe, count_flops


class _Silhouettes(nn.Module):
    """Takes HSTL's ``[n, s, h, w]`` input and adds the channel axis for a Conv3d stack."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv3d(1, 4, 3, padding=1, bias=False)
        self.pool = nn.MaxPool3d((1, 2, 2))
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(self.stem(x.unsqueeze(1)))  # [n, 4, s, h/2, w/2]
        return self.head(y.amax(dim=(2, 3, 4)))


class _NeedsRealData(nn.Module):
    """Reads a value on the host during forward, which a meta tensor cannot give."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(5, 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = float(x.abs().max().item()) + 1.0
        return self.fc(x) / scale


def test_single_conv3d_matches_hand_count() -> None:
    conv = nn.Conv3d(2, 4, kernel_size=3, padding=1, bias=False)
    flops = count_flops(conv, input_shape=(1, 2, 5, 6, 7))
    outputs = 4 * 5 * 6 * 7  # out channels x output positions (padding keeps the size)
    macs_per_output = 2 * 27  # in channels x kernel volume
    assert flops.total == 2 * outputs * macs_per_output == 90720
    assert flops.by_operator == {"convolution": 90720}
    assert flops.on_meta
    assert flops.input_shape == (1, 2, 5, 6, 7)


def test_linear_matches_hand_count_and_scales_with_batch() -> None:
    linear = nn.Linear(8, 3)
    assert count_flops(linear, input_shape=(4, 8)).total == 2 * 4 * 8 * 3
    assert count_flops(linear, input_shape=(8, 8)).total == 2 * 8 * 8 * 3


def test_hstl_style_shape_and_per_module_breakdown() -> None:
    model = _Silhouettes()
    flops = count_flops(model, frames=10, height=16, width=12, batch=2)
    stem = 2 * (2 * 4 * 10 * 16 * 12) * (1 * 27)
    head = 2 * 2 * 4 * 3
    assert flops.input_shape == (2, 10, 16, 12)
    assert flops.by_module == {"stem": stem, "head": head}
    assert flops.at_depth(1) == {"stem": stem, "head": head}
    assert flops.total == stem + head
    assert flops.gflops == pytest.approx((stem + head) / 1e9)


def test_pooling_is_not_counted() -> None:
    assert count_flops(nn.MaxPool3d(2), input_shape=(1, 3, 8, 8, 8)).total == 0


def test_live_module_is_left_untouched() -> None:
    model = _Silhouettes().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    count_flops(model, frames=4, height=8, width=8)
    assert model.training
    for name, value in model.state_dict().items():
        assert value.device.type == "cpu"
        assert torch.equal(value, before[name]), name


def test_recipe_is_built_on_meta() -> None:
    recipe = ModelRecipe("torch.nn:Conv3d", {"in_channels": 2, "out_channels": 4, "kernel_size": 3, "padding": 1})
    flops = count_flops(recipe, input_shape=(1, 2, 5, 6, 7))
    assert flops.total == 90720
    assert flops.on_meta


def test_falls_back_to_real_tensors_when_meta_fails(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="workbench.cost"):
        flops = count_flops(_NeedsRealData(), input_shape=(3, 5))
    assert flops.total == 2 * 3 * 5 * 2
    assert not flops.on_meta
    assert "meta device" in caplog.text


@pytest.mark.parametrize("shape", [(), (1, 0, 4), (1, -2), (1.5, 2)])
def test_rejects_bad_shapes(shape: tuple) -> None:
    with pytest.raises(ValueError, match="input_shape"):
        count_flops(nn.Linear(2, 2), input_shape=shape)


def test_rejects_unknown_source_type() -> None:
    with pytest.raises(TypeError, match="registered model name"):
        count_flops(42)
