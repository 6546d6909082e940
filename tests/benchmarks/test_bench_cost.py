"""Meta-device cost counting vs counting on real data, for the CASIA-B preset.

Run with ``nox -s bench`` (or ``pytest tests/benchmarks/test_bench_cost.py -s``). The baseline, in the
same run, is what counting would cost without the meta device: build the real model and run one real
30-frame 64x44 forward under FlopCounterMode. Targets: params + FLOPs in under 2 s, and at most a
fifth of the baseline's time. torch's one-time imports are paid before timing either side.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from workbench.cost import estimate_cost
from workbench.models import create_model

pytestmark = pytest.mark.benchmark

MODEL = "hstl-casia-b"
TARGET_SECONDS = 2.0
TARGET_RATIO = 0.2


def _meta_seconds() -> tuple[float, tuple[int, int]]:
    start = time.perf_counter()
    report = estimate_cost(MODEL, measure=("params", "flops"))
    return time.perf_counter() - start, (report.params or 0, round((report.gflops or 0.0) * 1e9))


def _real_seconds() -> tuple[float, tuple[int, int]]:
    start = time.perf_counter()
    model = create_model(MODEL).eval()
    params = sum(p.numel() for p in model.parameters())
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.rand(1, 30, 64, 44))
    return time.perf_counter() - start, (params, counter.get_total_flops())


def test_params_and_flops_on_meta_are_fast() -> None:
    torch.set_num_threads(2)
    estimate_cost("hstl-small", measure=("params", "flops"))  # one-time torch imports, for both sides
    meta_runs = [_meta_seconds() for _ in range(3)]
    meta = statistics.median(seconds for seconds, _ in meta_runs)
    real, real_counts = _real_seconds()
    assert all(counts == real_counts for _, counts in meta_runs), "meta and real counts must agree"
    ratio = meta / real
    print(f"\n{MODEL}: params+FLOPs on meta {meta:.3f} s (median of 3), real-data counting {real:.3f} s: "
          f"ratio {ratio:.3f} (target <= {TARGET_RATIO}); absolute target < {TARGET_SECONDS} s")
    assert meta < TARGET_SECONDS
    assert ratio <= TARGET_RATIO
