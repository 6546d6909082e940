"""``estimate_cost`` and ``CostReport``: which figures are measured, flattening and the table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from workbench.cost import CostReport, ModelRecipe, estimate_cost

_CONV = ModelRecipe(
    "torch.nn:Conv3d", {"in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1, "bias": False},
    label="conv",
)
_SHAPE = (1, 1, 6, 16, 12)
_CONV_FLOPS = 2 * (4 * 6 * 16 * 12) * 27


def test_params_and_flops_only_leave_the_rest_unmeasured() -> None:
    report = estimate_cost(_CONV, input_shape=_SHAPE, measure=("params", "flops"))
    assert report.model == "conv"
    assert report.params == 108
    assert report.gflops == pytest.approx(_CONV_FLOPS / 1e9)
    assert report.latency_ms is None and report.peak_memory_mb is None
    assert report.input_shape == _SHAPE
    assert report.torch_version == torch.__version__
    assert report.params_by_module == {"_root": 108}


def test_live_module_with_latency() -> None:
    model = nn.Sequential(nn.Conv3d(1, 4, 3, padding=1, bias=False), nn.ReLU())
    report = estimate_cost(model, input_shape=_SHAPE, measure=("params", "flops", "latency"), repeats=3)
    assert report.params == 108
    assert report.params_by_module == {"0": 108}
    assert report.gflops_by_module == {"0": pytest.approx(_CONV_FLOPS / 1e9)}
    assert report.latency_repeats == 3
    assert report.latency_p10_ms is not None and report.latency_p90_ms is not None
    assert 0 < report.latency_p10_ms <= report.latency_ms <= report.latency_p90_ms  # type: ignore[operator]
    assert report.device == "cpu"


def test_hstl_style_shape_from_frames_height_width() -> None:
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(12, 2, bias=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(x)

    report = estimate_cost(Flat(), frames=5, height=16, width=12, batch=3, measure=("flops",))
    assert report.input_shape == (3, 5, 16, 12)
    assert report.gflops == pytest.approx(2 * 3 * 5 * 16 * 12 * 2 / 1e9)


def test_to_dict_is_flat_and_skips_unmeasured() -> None:
    report = estimate_cost(_CONV, input_shape=_SHAPE, measure=("params", "flops"))
    flat = report.to_dict()
    assert flat["params"] == 108
    assert flat["params._root"] == 108
    assert flat["input_shape"] == "1x1x6x16x12"
    assert flat["gflops"] == pytest.approx(_CONV_FLOPS / 1e9)
    assert "latency_ms" not in flat and "peak_memory_mb" not in flat
    assert all(isinstance(v, (int, float, str)) for v in flat.values())


def test_table_shows_every_measured_figure() -> None:
    report = CostReport(
        model="m", input_shape=(1, 30, 64, 44), device="cpu", mode="inference", threads=2, torch_version="2.x",
        params=4_745_834, gflops=51.65, latency_ms=12.0, latency_p10_ms=11.0, latency_p90_ms=13.5,
        latency_repeats=5, peak_memory_mb=680.0, peak_memory_delta_mb=300.0, memory_method="process-rss",
        params_by_module={"Head0": 1_196_032},
    )
    text = report.table()
    for expected in ("4,745,834", "51.65", "Head0", "1,196,032", "median 12.0", "p90 13.5", "680.0 raw",
                     "300.0 added", "1x30x64x44"):
        assert expected in text
    assert str(report) == text


def test_progress_reports_each_figure_in_order() -> None:
    seen: list[str] = []
    estimate_cost(_CONV, input_shape=_SHAPE, measure=("flops", "params"), progress=seen.append)
    assert seen == ["params", "flops"]


def test_threads_apply_during_measurement_and_are_restored() -> None:
    before = torch.get_num_threads()
    report = estimate_cost(_CONV, input_shape=_SHAPE, measure=("params",), threads=1)
    assert report.threads == 1
    assert torch.get_num_threads() == before


def test_unknown_figure_is_named() -> None:
    with pytest.raises(ValueError, match="'energy'"):
        estimate_cost(_CONV, input_shape=_SHAPE, measure=("params", "energy"))


def test_memory_of_a_live_module_on_cpu_is_refused() -> None:
    with pytest.raises(TypeError, match="fresh process"):
        estimate_cost(nn.Linear(2, 2), input_shape=(1, 2), measure=("memory",))
