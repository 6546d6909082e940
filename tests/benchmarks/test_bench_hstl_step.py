"""CASIA-B HSTL training step on CPU: the workbench model vs the public code's plain recipe.

Run with ``nox -s bench`` (or ``pytest tests/benchmarks/test_bench_hstl_step.py -s``). The baseline,
written here, is the public code's way: one Conv3d per region in a Python loop with split and
concatenation, out-of-place LeakyReLU after each ARME, FTA per split region. Both sides get the same
weights (the state-dict names are the same) and must give the same outputs. A step is forward +
batch-all triplet (margin 0.2) and cross-entropy per part + backward, 8 sequences x 30 frames x 64x44,
fp32, 2 threads. Each side runs in a fresh process (1 warm-up + 3 timed steps), so its ``ru_maxrss``
is its own peak. Targets: >= 1.5x faster, <= 0.7x the peak memory. Achieved FLOP/s are printed as a
fraction of the fp32 matmul rate measured in the same run.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytestmark = pytest.mark.benchmark

BATCH, FRAMES, HEIGHT, WIDTH = 8, 30, 64, 44
THREADS = 2
WARMUP, TIMED = 1, 3
TARGET_SPEEDUP = 1.5
TARGET_MEMORY_RATIO = 0.7


# -- the public code's plain recipe (module names as in its checkpoints) -------------------------


class BasicConv3d(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(cin, cout, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3d(x)


class PlainARME(nn.Module):
    def __init__(self, cin: int, cout: int, split: list[int]) -> None:
        super().__init__()
        self.split = split
        self.conv3d = nn.ModuleList(BasicConv3d(cin, cout) for _ in split)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regions = x.split(self.split, 3)
        return F.leaky_relu(torch.cat([conv(r) for conv, r in zip(self.conv3d, regions, strict=True)], 3))


class PlainGeM(nn.Module):
    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins
        self.p = nn.Parameter(torch.ones(1) * 6.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = x.view(x.shape[0], x.shape[1], self.bins, -1)
        return F.avg_pool2d(z.clamp(min=1e-6).pow(self.p), (1, z.shape[-1])).pow(1.0 / self.p).squeeze(-1)


class Proj(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class PlainASTP(nn.Module):
    def __init__(self, split: list[int], cin: int, cout: int, project: bool = True) -> None:
        super().__init__()
        self.split = split
        self.hpp = nn.ModuleList(PlainGeM(1) for _ in split)
        self.proj = Proj(cin, cout) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.max(x, dim=2)[0]
        if self.proj is not None:
            x = self.proj(x)
        return torch.cat([gem(r) for gem, r in zip(self.hpp, x.split(self.split, 2), strict=True)], -1)


class PlainFTA(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.pool3 = nn.MaxPool3d((3, 1, 1), (3, 1, 1))
        self.pool5 = nn.MaxPool3d((5, 1, 1), (3, 1, 1), (1, 0, 0))
        self.gap = nn.AdaptiveAvgPool3d((None, 1, 1))
        self.fcs = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [self.pool3(x), self.pool5(x)]
        summary = self.gap(sum(pooled)).squeeze(-1).squeeze(-1)
        n, c, t = summary.shape
        weights = torch.stack([fc(summary).view(n, c, t, 1, 1) for fc in self.fcs]).softmax(0)
        return (weights * torch.stack(pooled)).sum(0)


class PlainFTABlock(nn.Module):
    def __init__(self, split: list[int], channels: int) -> None:
        super().__init__()
        self.split = split
        self.mma = nn.ModuleList(PlainFTA(channels) for _ in split)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([fta(r) for fta, r in zip(self.mma, x.split(self.split, 3), strict=True)], 3)


class PlainFCs(nn.Module):
    def __init__(self, parts: int, cin: int, cout: int) -> None:
        super().__init__()
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, cin, cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(2, 0, 1).matmul(self.fc_bin).permute(1, 2, 0)


class PlainHSTL(nn.Module):
    """The CASIA-B model exactly as the public code runs it."""

    def __init__(self, classes: int = 74) -> None:
        super().__init__()
        self.arme1 = nn.Sequential(BasicConv3d(1, 32), nn.LeakyReLU(inplace=True))
        self.astp1 = PlainASTP([64], 32, 128)
        self.arme2 = nn.Sequential(PlainARME(32, 32, [40, 24]), PlainARME(32, 64, [40, 24]))
        self.astp2 = PlainASTP([40, 24], 64, 128)
        self.fta = PlainFTABlock([40, 24], 64)
        self.astp2_fta = PlainASTP([40, 24], 64, 128)
        self.arme3 = nn.Sequential(PlainARME(64, 128, [8, 32, 16, 8]), PlainARME(128, 128, [8, 32, 16, 8]))
        self.astp3 = PlainASTP([8, 32, 16, 8], 128, 128, project=False)
        self.HPP = PlainGeM(64)
        self.Head0 = PlainFCs(73, 128, 128)
        self.Bn = nn.BatchNorm1d(128)
        self.Head1 = PlainFCs(73, 128, classes)

    def forward(self, sils: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = self.arme1(sils.unsqueeze(1))
        a1 = self.astp1(outs)
        outs = self.arme2(outs)
        a2 = self.astp2(outs)
        outs = self.fta(outs)
        a2f = self.astp2_fta(outs)
        outs = self.arme3(outs)
        a3 = self.astp3(outs)
        a4 = self.HPP(torch.max(outs, dim=2)[0])
        bnft = self.Bn(self.Head0(torch.cat([a1, a2, a2f, a3, a4], -1)))
        return bnft, self.Head1(bnft)


# -- one measured side, in its own process ---------------------------------------------------------


def build(variant: str) -> nn.Module:
    """The workbench CASIA-B model, or the plain recipe carrying the very same weights."""
    from workbench.models import create_model

    torch.manual_seed(0)
    model = create_model("hstl-casia-b")
    if variant == "workbench":
        return model
    plain = PlainHSTL()
    plain.load_state_dict(model.state_dict(), strict=True)
    return plain


def outputs(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    out = model(x)
    return (out[0], out[1])


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = (torch.rand(BATCH, FRAMES, HEIGHT, WIDTH, generator=generator) > 0.6).float()
    return x, torch.arange(BATCH // 2).repeat_interleave(2)


def measure(variant: str) -> dict[str, float | list[float]]:
    """Time WARMUP + TIMED training steps; report the median and this process's peak RSS."""
    from workbench.training import GaitLoss

    torch.set_num_threads(THREADS)
    model = build(variant).train()
    loss_fn = GaitLoss()
    x, labels = batch()
    times = []
    for index in range(WARMUP + TIMED):
        start = time.perf_counter()
        model.zero_grad(set_to_none=True)
        embeddings, logits = outputs(model, x)
        loss, _ = loss_fn(embeddings, logits, labels)
        loss.backward()
        if index >= WARMUP:
            times.append(time.perf_counter() - start)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "times_s": times, "peak_rss_mb": peak_mb}


def run_side(variant: str) -> dict[str, float | list[float]]:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), variant],
        check=True, capture_output=True, text=True, timeout=1800,
        env={"OMP_NUM_THREADS": str(THREADS), **_env()},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def matmul_rate() -> float:
    """fp32 matmul FLOP/s with THREADS threads (best of 5, 2048^2)."""
    torch.set_num_threads(THREADS)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * 2048**3 / best


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def step_flops() -> int:
    """Forward + backward FLOPs of one step of the model (meta device: shapes only)."""
    from torch.utils.flop_counter import FlopCounterMode

    from workbench.models import create_model

    with torch.device("meta"):
        model = create_model("hstl-casia-b").train()
        x = torch.rand(BATCH, FRAMES, HEIGHT, WIDTH)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        (out.embeddings.sum() + out.logits.sum()).backward()
    return counter.get_total_flops()


def test_outputs_match_the_plain_recipe() -> None:
    torch.set_num_threads(THREADS)
    x, _ = batch()
    x = x[:2]
    with torch.no_grad():
        mine = outputs(build("workbench").train(), x)
        plain = outputs(build("plain").train(), x)
    torch.testing.assert_close(mine[0], plain[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(mine[1], plain[1], atol=1e-5, rtol=1e-4)


def test_training_step_is_faster_and_leaner_than_the_plain_recipe() -> None:
    rate = matmul_rate()
    flops = step_flops()
    plain = run_side("plain")
    mine = run_side("workbench")
    speedup = float(plain["median_s"]) / float(mine["median_s"])
    memory = float(mine["peak_rss_mb"]) / float(plain["peak_rss_mb"])
    print(f"\nCASIA-B HSTL train step, {BATCH}x{FRAMES}x{HEIGHT}x{WIDTH}, fp32, {THREADS} threads, "
          f"{flops / 1e9:.0f} GFLOP (forward+backward)")
    print(f"fp32 matmul rate: {rate / 1e9:.1f} GFLOP/s")
    for name, side in (("plain recipe", plain), ("workbench", mine)):
        achieved = flops / float(side["median_s"])
        print(f"{name:>13}: median {float(side['median_s']):.2f} s {side['times_s']}, peak RSS "
              f"{float(side['peak_rss_mb']):.0f} MB, {achieved / 1e9:.1f} GFLOP/s = {achieved / rate:.2f} of matmul")
    print(f"speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP}), memory ratio {memory:.2f} "
          f"(target <= {TARGET_MEMORY_RATIO})")
    assert speedup >= TARGET_SPEEDUP
    assert memory <= TARGET_MEMORY_RATIO


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
