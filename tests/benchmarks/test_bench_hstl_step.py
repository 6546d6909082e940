"""CASIA-B HSTL training step on CPU: the workbench model vs the public code's plain recipe.

Run with ``nox -s bench`` (or ``pytest tests/benchmarks/test_bench_hstl_step.py -s``). The baseline,
written here, is the public code's way: one Conv3d per region in a Python loop with split and
concatenation, out-of-place LeakyReLU after each ARME, FTA per split region. Both sides get the same
weights (the state-dict names are the same) and must give the same outputs. A step is forward +
batch-all triplet (margin 0.2) and cross-entropy per part + backward, 8 sequences x 30 frames x 64x44,
fp32, 2 threads. Each side runs in a fresh process (1 warm-up + 3 timed steps), so its ``ru_maxrss``
is its own peak; the sides alternate over two rounds and each keeps its fastest round. Targets: >= 1.5x
faster, <= 0.7x the peak memory. Achieved FLOP/s are printed as a fraction of the fp32 matmul rate
measured in the same run.

No implementation of the same FLOPs outruns the machine's fp32 matmul, so the speed-up cannot exceed
matmul rate / plain rate. Where the plain recipe already runs close to that rate (e.g. 0.76 of it on an
AVX-512 EPYC, against 0.38 on the CPU the 1.5x was set on) the ceiling is below 1.5x; there the test
asks for CEILING_SHARE of the ceiling instead, i.e. the workbench at >= 0.9 of the matmul rate, and
prints that it did.

The same test times the model's convolutions alone (forward and backward of each Conv3d on inputs of
the real step's shapes and layouts): the fraction of the matmul rate they reach, and the time the step's
other ops take, say how close to the matmul rate any step of this model can come on the machine.

A second test climbs a lever ladder, one round: the plain recipe, plus channels-last conv inputs,
plus in-place LeakyReLU, then the workbench model (per-region tensors, one-byte activation masks, lean
temporal pools), printing what each rung gains over the plain recipe and over the rung before.

On a CPU with bf16 units (AVX512-BF16 or AMX) another test times the workbench step under bf16 autocast
against fp32 (and the plain recipe under bf16); bf16 must be faster there with the same loss to bf16
rounding. Elsewhere it is skipped with the reason.

On a CUDA machine a third test prints the AMP (bf16 and fp16) training-step and batched-inference
throughput of both sides in sequences per second, with the training step's allocator peak; without
CUDA it is skipped. It was checked on the CPU under bf16 autocast only, where it runs end to end.
"""

from __future__ import annotations

import contextlib
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from workbench.models import native_bf16

pytestmark = pytest.mark.benchmark

BATCH, FRAMES, HEIGHT, WIDTH = 8, 30, 64, 44
THREADS = 2
WARMUP, TIMED = 1, 3
ROUNDS = 2
TARGET_SPEEDUP = 1.5
CEILING_SHARE = 0.9  # of the matmul-bound ceiling, where that is below the target
TARGET_MEMORY_RATIO = 0.7
CPU = torch.device("cpu")


# -- the public code's plain recipe (module names as in its checkpoints) -------------------------

# Levers the lever ladder switches on one at a time in the plain recipe (see ``build``).
LEVERS = {"channels_last": False, "inplace": False}


class BasicConv3d(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv3d = nn.Conv3d(cin, cout, 3, 1, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if LEVERS["channels_last"]:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        return self.conv3d(x)


class PlainARME(nn.Module):
    def __init__(self, cin: int, cout: int, split: list[int]) -> None:
        super().__init__()
        self.split = split
        self.conv3d = nn.ModuleList(BasicConv3d(cin, cout) for _ in split)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        regions = x.split(self.split, 3)
        out = torch.cat([conv(r) for conv, r in zip(self.conv3d, regions, strict=True)], 3)
        return F.leaky_relu(out, inplace=LEVERS["inplace"])


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


# The lever ladder: each rung adds one change to the one before; the last is the workbench model,
# which adds per-region tensors (no split/cat copies), one-byte activation masks, and the lean
# temporal pools (uint8 argmax offsets, one gradient buffer, one max shared by ASTP and FTA).
LADDER = {
    "plain": {},
    "+channels-last": {"channels_last": True},
    "+in-place LeakyReLU": {"channels_last": True, "inplace": True},
    "workbench": None,
}


def build(variant: str) -> nn.Module:
    """The workbench CASIA-B model, or the plain recipe (with a rung's levers) carrying the same weights."""
    from workbench.models import create_model

    torch.manual_seed(0)
    model = create_model("hstl-casia-b")
    if variant == "workbench":
        return model
    LEVERS.update({"channels_last": False, "inplace": False, **(LADDER.get(variant) or {})})
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


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(fn: Callable[[], object], warmup: int, steps: int, device: torch.device = CPU) -> list[float]:
    """Wall seconds of ``steps`` calls of ``fn`` after ``warmup`` untimed ones (CUDA synchronised)."""
    times = []
    for index in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return times


def precision(device: torch.device, amp: str) -> contextlib.AbstractContextManager[object]:
    """Autocast to bf16 or fp16, or nothing for ``off`` (fp32)."""
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.float16 if amp == "fp16" else torch.bfloat16)


def training_step(model: nn.Module, loss_fn: nn.Module, x: torch.Tensor, labels: torch.Tensor, amp: str = "off",
                  scaler: torch.amp.GradScaler | None = None) -> torch.Tensor:
    """Forward (under autocast unless ``amp`` is off), triplet + cross-entropy, backward; returns the loss."""
    model.zero_grad(set_to_none=True)
    with precision(x.device, amp):
        embeddings, logits = outputs(model, x)
    loss, _ = loss_fn(embeddings.float(), logits.float(), labels)
    (loss if scaler is None else scaler.scale(loss)).backward()
    return loss


def convolutions_alone(model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> Callable[[], object]:
    """A step of only the model's 3-D convolutions: each layer's forward and backward on an input of the shape,
    layout and gradient need it has in the real step (seen once through forward hooks).

    Every other op of the step (pools, activations, heads, losses) is left out, so this step's time bounds
    from below what any implementation of the model's convolutions can take on this machine.
    """
    from workbench.training import GaitLoss

    seen: list[tuple[nn.Module, torch.Tensor]] = []

    def record(module: nn.Module, args: tuple[torch.Tensor, ...], _: object) -> None:
        fmt = torch.channels_last_3d if args[0].is_contiguous(memory_format=torch.channels_last_3d) else None
        like = torch.randn(args[0].shape).contiguous(memory_format=fmt or torch.contiguous_format)
        seen.append((module, like.requires_grad_(args[0].requires_grad)))

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv3d)]
    training_step(model, GaitLoss(), x, labels)
    for hook in hooks:
        hook.remove()

    def step() -> None:
        for module, inp in seen:
            out = module(inp)
            out.backward(torch.ones_like(out))

    return step


def measure(variant: str) -> dict[str, float | list[float]]:
    """Time WARMUP + TIMED training steps; report the median and this process's peak RSS.

    ``convolutions`` times the workbench model's convolutions alone (``convolutions_alone``).
    """
    from workbench.training import GaitLoss

    torch.set_num_threads(THREADS)
    model = build("workbench" if variant == "convolutions" else variant).train()
    loss_fn = GaitLoss()
    x, labels = batch()
    if variant == "convolutions":
        times = step_times(convolutions_alone(model, x, labels), WARMUP, TIMED)
    else:
        times = step_times(lambda: training_step(model, loss_fn, x, labels), WARMUP, TIMED)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"median_s": statistics.median(times), "times_s": times, "peak_rss_mb": peak_mb}


def run_side(variant: str) -> dict[str, float | list[float]]:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), variant],
        check=True, capture_output=True, text=True, timeout=1800,
        env={"OMP_NUM_THREADS": str(THREADS), **_env()},
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def alternate_rounds() -> tuple[dict[str, float | list[float]], dict[str, float | list[float]]]:
    """ROUNDS rounds of plain then workbench, each in a fresh process.

    Alternating spreads any load from other jobs over both sides; each side keeps its fastest round's
    median and its highest peak, so a noisy round can only make the memory figure worse.
    """
    rounds: dict[str, list[dict[str, float | list[float]]]] = {"plain": [], "workbench": []}
    for _ in range(ROUNDS):
        for variant in rounds:
            rounds[variant].append(run_side(variant))
    best = []
    for results in rounds.values():
        fastest = min(results, key=lambda r: float(r["median_s"]))
        best.append({**fastest, "peak_rss_mb": max(float(r["peak_rss_mb"]) for r in results),
                     "round_medians_s": [round(float(r["median_s"]), 2) for r in results]})
    return best[0], best[1]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}


def matmul_rate() -> float:
    """fp32 matmul FLOP/s with THREADS threads (2048^2, 3 warm-ups, best of 10).

    The warm-ups matter: the first products run while the thread pool and the clock ramp up, and
    counting them halves the rate.
    """
    torch.set_num_threads(THREADS)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
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


def required_speedup(plain_rate: float, matmul: float) -> tuple[float, float]:
    """(speed-up to assert, the machine's ceiling matmul / plain rate): the target, capped below the ceiling."""
    ceiling = matmul / plain_rate
    return min(TARGET_SPEEDUP, CEILING_SHARE * ceiling), ceiling


def test_required_speedup_is_the_target_unless_the_machine_caps_it() -> None:
    assert required_speedup(plain_rate=100e9, matmul=170e9) == (TARGET_SPEEDUP, 1.7)
    required, ceiling = required_speedup(plain_rate=150e9, matmul=195e9)
    assert ceiling == pytest.approx(1.3) and required == pytest.approx(CEILING_SHARE * 1.3)


def test_training_step_is_faster_and_leaner_than_the_plain_recipe() -> None:
    rate = matmul_rate()
    flops = step_flops()
    plain, mine = alternate_rounds()
    speedup = float(plain["median_s"]) / float(mine["median_s"])
    memory = float(mine["peak_rss_mb"]) / float(plain["peak_rss_mb"])
    print(f"\nCASIA-B HSTL train step, {BATCH}x{FRAMES}x{HEIGHT}x{WIDTH}, fp32, {THREADS} threads, "
          f"{flops / 1e9:.0f} GFLOP (forward+backward)")
    print(f"fp32 matmul rate: {rate / 1e9:.1f} GFLOP/s")
    for name, side in (("plain recipe", plain), ("workbench", mine)):
        achieved = flops / float(side["median_s"])
        print(f"{name:>13}: median {float(side['median_s']):.2f} s (round medians {side['round_medians_s']}), peak RSS "
              f"{float(side['peak_rss_mb']):.0f} MB, {achieved / 1e9:.1f} GFLOP/s = {achieved / rate:.2f} of matmul")
    required, ceiling = required_speedup(flops / float(plain["median_s"]), rate)
    print(f"speed-up {speedup:.2f}x (target >= {TARGET_SPEEDUP}), memory ratio {memory:.2f} "
          f"(target <= {TARGET_MEMORY_RATIO})")
    if required < TARGET_SPEEDUP:
        print(f"the plain recipe runs at {rate * 1e-9 / ceiling:.1f} GFLOP/s, so no step of these FLOPs beats it by more "
              f"than {ceiling:.2f}x here; required {CEILING_SHARE} of that: {required:.2f}x")
    convs = float(run_side("convolutions")["median_s"])
    rest = float(mine["median_s"]) - convs
    print(f"the model's convolutions alone (forward+backward, same shapes): {convs:.2f} s = "
          f"{flops / convs / rate:.2f} of matmul; the workbench step's other ops: {rest:.2f} s "
          f"({rest / float(mine['median_s']):.0%} of its step). A step at 0.85 of matmul would take "
          f"{flops / (0.85 * rate):.2f} s, leaving {flops / (0.85 * rate) - convs:.2f} s for everything but convolutions")
    assert speedup >= required
    assert memory <= TARGET_MEMORY_RATIO


def test_each_lever_on_the_plain_recipe_keeps_outputs_and_is_timed() -> None:
    """One round up the ladder: prints each rung's step time and peak against the plain recipe."""
    torch.set_num_threads(THREADS)
    x, _ = batch()
    with torch.no_grad():
        reference = outputs(build("workbench").train(), x[:2])
        for variant in LADDER:
            got = outputs(build(variant).train(), x[:2])
            torch.testing.assert_close(got[0], reference[0], atol=1e-5, rtol=1e-4)
    results = {variant: run_side(variant) for variant in LADDER}
    base = results["plain"]
    print(f"\nlever ladder, CASIA-B HSTL train step {BATCH}x{FRAMES}x{HEIGHT}x{WIDTH}, fp32, {THREADS} threads:")
    previous = base
    for variant, side in results.items():
        print(f"{variant:>22}: median {float(side['median_s']):.2f} s, peak RSS {float(side['peak_rss_mb']):.0f} MB; "
              f"vs plain {float(base['median_s']) / float(side['median_s']):.2f}x faster, "
              f"{float(side['peak_rss_mb']) / float(base['peak_rss_mb']):.2f}x memory; vs the rung before "
              f"{float(previous['median_s']) / float(side['median_s']):.2f}x")
        previous = side
    assert float(results["workbench"]["median_s"]) < float(base["median_s"])


# -- GPU: AMP training step and batched inference (figures for the issue note; CI has no GPU) -------

GPU_STEPS, GPU_WARMUP, GPU_INFER_BATCH = 20, 3, 64


def amp_figures(variant: str, device: torch.device, amp: str, steps: int = GPU_STEPS, warmup: int = GPU_WARMUP,
                infer_batch: int = GPU_INFER_BATCH) -> dict[str, float]:
    """Training-step and inference throughput (sequences/s) of one side under autocast ``amp``.

    The step is the CPU benchmark's (8 x 30 x 64 x 44, both losses, backward; fp16 through a
    GradScaler); inference runs ``infer_batch`` 30-frame sequences per forward. On CUDA the peak
    allocator memory of the training step is reported too.
    """
    from workbench.training import GaitLoss

    model = build(variant).to(device).train()
    loss_fn = GaitLoss()
    scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
    x, labels = batch()
    x, labels = x.to(device), labels.to(device)

    def train_step() -> None:
        loss = training_step(model, loss_fn, x, labels, amp, scaler)
        if not torch.isfinite(loss):
            raise AssertionError(f"{variant} {amp}: non-finite loss {loss.item()}")

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_s = statistics.median(step_times(train_step, warmup, steps, device))
    peak_mb = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else float("nan")
    model.eval()
    frames = (torch.rand(infer_batch, FRAMES, HEIGHT, WIDTH, device=device) > 0.6).float()

    def infer() -> None:
        with torch.inference_mode(), precision(device, amp):
            outputs(model, frames)

    infer_s = statistics.median(step_times(infer, warmup, steps, device))
    return {"train_seq_s": BATCH / train_s, "infer_seq_s": infer_batch / infer_s, "train_peak_mb": peak_mb}


@pytest.mark.skipif(not native_bf16("cpu"),
                    reason="the CPU has no bf16 units (AVX512-BF16 or AMX): bf16 autocast is emulated there and "
                           "slower than fp32, so fp32 stays the CPU choice")
def test_cpu_bf16_autocast_step_is_faster_than_fp32_where_the_cpu_has_bf16_units() -> None:
    """Why ``amp = "auto"`` means bf16 on such CPUs: faster, with the same loss to 3 digits (same weights, batch)."""
    from workbench.training import GaitLoss

    torch.set_num_threads(THREADS)
    loss_fn = GaitLoss()
    x, labels = batch()
    median: dict[tuple[str, str], float] = {}
    losses: dict[str, float] = {}
    for variant, amp in (("workbench", "off"), ("workbench", "bf16"), ("plain", "bf16")):
        model = build(variant).train()
        if variant == "workbench":
            losses[amp] = float(training_step(model, loss_fn, x, labels, amp).detach())
        median[variant, amp] = statistics.median(
            step_times(lambda: training_step(model, loss_fn, x, labels, amp), WARMUP, TIMED))  # noqa: B023
    print(f"\nCASIA-B HSTL train step on the CPU ({THREADS} threads), {BATCH}x{FRAMES}x{HEIGHT}x{WIDTH}:")
    for (variant, amp), seconds in median.items():
        print(f"{variant:>10} {'fp32' if amp == 'off' else amp}: median {seconds:.2f} s, {BATCH / seconds:.2f} seq/s")
    gain = median["workbench", "off"] / median["workbench", "bf16"]
    print(f"bf16 / fp32 speed-up {gain:.2f}x; workbench / plain under bf16 "
          f"{median['plain', 'bf16'] / median['workbench', 'bf16']:.2f}x; loss fp32 {losses['off']:.4f}, "
          f"bf16 {losses['bf16']:.4f}")
    # amp = "auto" picks bf16 on such a CPU: it must be faster and give the fp32 loss to 3 digits.
    assert abs(losses["bf16"] - losses["off"]) <= 1e-3 * abs(losses["off"]), losses
    assert gain > 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device: AMP step and inference figures")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_gpu_amp_step_and_batched_inference_against_the_plain_recipe(amp: str) -> None:
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    figures = {variant: amp_figures(variant, device, amp) for variant in ("plain", "workbench")}
    print(f"\nCASIA-B HSTL on {torch.cuda.get_device_name(device)}, AMP {amp}: train step {BATCH}x{FRAMES}x"
          f"{HEIGHT}x{WIDTH}, inference {GPU_INFER_BATCH} sequences x {FRAMES} frames per forward")
    for variant, f in figures.items():
        print(f"{variant:>10}: train {f['train_seq_s']:.1f} seq/s (peak {f['train_peak_mb']:.0f} MiB), "
              f"inference {f['infer_seq_s']:.1f} seq/s")
    plain, mine = figures["plain"], figures["workbench"]
    print(f"workbench / plain: train {mine['train_seq_s'] / plain['train_seq_s']:.2f}x, inference "
          f"{mine['infer_seq_s'] / plain['infer_seq_s']:.2f}x, train peak memory "
          f"{mine['train_peak_mb'] / plain['train_peak_mb']:.2f}x")


if __name__ == "__main__":
    print(json.dumps(measure(sys.argv[1])))
