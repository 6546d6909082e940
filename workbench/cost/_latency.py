"""Wall-clock latency of one inference forward or one training forward+backward."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from workbench.cost._step import (
    check_mode,
    check_shape,
    left_as_found,
    random_input,
    run_step,
)
from workbench.models import autocast, resolve_device


@dataclasses.dataclass(frozen=True)
class LatencyStats:
    """Latency of one step in milliseconds over ``repeats`` timed runs after warm-up."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    samples_ms: tuple[float, ...]
    mode: str
    device: str
    input_shape: tuple[int, ...]
    threads: int
    amp: str = "off"

    @property
    def repeats(self) -> int:
        """How many timed runs the statistics come from."""
        return len(self.samples_ms)


# Untimed steps before timing. On CPU the first steps of a 3D-conv model run 20-40 % slower while
# oneDNN builds its kernels and the allocator settles (CASIA-B preset, 8 x 30 frames, train steps
# 8.6, 7.6, 6.5, then 5.9 s): one warm-up step left the second and third in the median.
WARMUP_STEPS = 3


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    device: str | torch.device = "auto",
    warmup: int = WARMUP_STEPS,
    repeats: int = 5,
    mode: str = "inference",
    amp: str = "off",
) -> LatencyStats:
    """Median, p10 and p90 wall time of a step on random input ``x: input_shape`` (``[n, s, h, w]`` for HSTL).

    ``inference`` runs the forward under ``torch.inference_mode`` in eval mode; ``train`` runs forward
    and backward of the summed outputs in train mode (no optimiser step). The model runs on
    ``device`` and is left as it was found: same device, train/eval flag, buffers, no gradients.
    CUDA work is synchronised before and after each timed step. ``amp`` (``"off"``, ``"bf16"``,
    ``"fp16"`` on CUDA) runs the forward under autocast.
    """
    step_mode = check_mode(mode)
    shape = check_shape(input_shape)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup={warmup!r}: expected an integer >= 0")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats={repeats!r}: expected an integer >= 1")
    target = resolve_device(device)
    autocast(target, amp)  # a bad precision fails before the model moves
    if any(p.is_meta for p in model.parameters()):
        raise ValueError(f"{type(model).__name__} lives on the meta device; build it on {target} to time it")
    x = random_input(shape, target)

    def sync() -> None:
        if target.type == "cuda":
            torch.cuda.synchronize(target)

    samples: list[float] = []
    with left_as_found(model, step_mode):
        model.to(target)
        for _ in range(warmup):
            run_step(model, x, step_mode, amp)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            run_step(model, x, step_mode, amp)
            sync()
            samples.append((time.perf_counter() - start) * 1e3)
    p10, median, p90 = (float(v) for v in np.percentile(samples, [10, 50, 90]))
    return LatencyStats(
        median_ms=median,
        p10_ms=p10,
        p90_ms=p90,
        samples_ms=tuple(samples),
        mode=step_mode,
        device=str(target),
        input_shape=shape,
        threads=torch.get_num_threads(),
        amp=amp,
    )
