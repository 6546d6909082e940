"""Peak memory of one step: the CUDA allocator's peak on GPU, a fresh process's RSS high-water on CPU.

On CPU the step runs in a new Python process so that whatever the caller allocated before (other
models, datasets, earlier steps) cannot hide the step's own peak: a high-water mark only ever rises.
The child reads its own resident-set high-water (see ``_memory_worker`` for why ``VmHWM`` rather
than ``ru_maxrss`` on Linux). The child receives the model as a JSON :class:`ModelRecipe` (registry name, spec fields or factory
path) and the input shape, never a pickle.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

import workbench
from workbench.cost._source import as_recipe
from workbench.cost._step import (
    check_mode,
    check_shape,
    left_as_found,
    random_input,
    run_step,
)
from workbench.models import autocast, resolve_device

_MB = 1024 * 1024
_WORKER = "workbench.cost._memory_worker"


@dataclasses.dataclass(frozen=True)
class PeakMemory:
    """Peak memory of one step in MiB.

    ``peak_mb`` is the step's high-water mark (CUDA: allocated bytes of the model, its input and the
    step, without what the process held before; CPU: the child process's resident set, Python and
    torch included). ``baseline_mb`` is the same figure
    just before the step, with the model built and the input allocated; ``delta_mb`` is what the
    step itself added.
    """

    peak_mb: float
    baseline_mb: float
    method: str
    device: str
    mode: str
    input_shape: tuple[int, ...]
    threads: int

    @property
    def delta_mb(self) -> float:
        """What the step added on top of the model and its input."""
        return max(self.peak_mb - self.baseline_mb, 0.0)


def measure_peak_memory(
    model_or_spec: Any,
    input_shape: Sequence[int],
    device: str | torch.device = "auto",
    mode: str = "inference",
    threads: int | None = None,
    timeout_s: float = 900.0,
    amp: str = "off",
) -> PeakMemory:
    """Peak memory of one ``inference`` or ``train`` step on random input ``x: input_shape``.

    ``model_or_spec`` is a registry name, a spec dataclass or a :class:`ModelRecipe`; a live
    ``nn.Module`` is accepted on CUDA only (a CPU measurement must rebuild the model in a fresh
    process). ``threads`` sets the child's torch thread count on CPU (default: this process's).
    ``amp`` runs the step's forward under autocast.
    """
    step_mode = check_mode(mode)
    shape = check_shape(input_shape)
    target = resolve_device(device)
    autocast(target, amp)  # a bad precision fails here, not in the child
    if target.type == "cuda":
        return _measure_cuda(model_or_spec, shape, target, step_mode, amp)
    recipe = as_recipe(model_or_spec)
    if recipe is None:
        raise TypeError(
            f"measure_peak_memory on CPU rebuilds the model in a fresh process, so it needs a registry name, "
            f"a spec or a ModelRecipe, not a live {type(model_or_spec).__name__}"
        )
    n_threads = threads if threads is not None else torch.get_num_threads()
    if isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1:
        raise ValueError(f"threads={threads!r}: expected an integer >= 1")
    request = {
        "recipe": json.loads(recipe.to_json()),
        "input_shape": list(shape),
        "mode": step_mode,
        "threads": n_threads,
        "amp": amp,
    }
    result = _run_worker(request, n_threads, timeout_s, recipe.label)
    return PeakMemory(
        peak_mb=result["peak_bytes"] / _MB,
        baseline_mb=result["baseline_bytes"] / _MB,
        method=str(result["method"]),
        device="cpu",
        mode=step_mode,
        input_shape=shape,
        threads=int(result["threads"]),
    )


def _run_worker(request: dict[str, Any], threads: int, timeout_s: float, label: str) -> dict[str, Any]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    # The child must import this very package even when it is used from a source checkout.
    package_root = str(Path(workbench.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH", "")) if p)
    try:
        completed = subprocess.run(
            [sys.executable, "-m", _WORKER],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(
            f"memory probe for {label} took longer than {timeout_s:.0f} s; use a smaller input or raise timeout_s"
        ) from exc
    lines = completed.stdout.strip().splitlines()
    try:
        result = json.loads(lines[-1]) if lines else {}
    except json.JSONDecodeError:
        result = {}
    if completed.returncode != 0 or "peak_bytes" not in result:
        detail = result.get("error") or completed.stderr.strip()[-2000:] or f"exit status {completed.returncode}"
        raise RuntimeError(f"memory probe for {label} failed: {detail}")
    return result


def _measure_cuda(model_or_spec: Any, shape: tuple[int, ...], target: torch.device, mode: str,
                  amp: str) -> PeakMemory:
    step_mode = check_mode(mode)
    if isinstance(model_or_spec, nn.Module):
        model = model_or_spec
    else:
        recipe = as_recipe(model_or_spec)
        assert recipe is not None
        with torch.device(target):
            model = recipe.build()
    # What the process holds besides this model (other models, an earlier trial's leftovers) is not
    # this step's memory: it is measured first and taken off both figures.
    torch.cuda.synchronize(target)
    others = torch.cuda.memory_allocated(target) - _bytes_on(model, target)
    x = random_input(shape, target)
    with left_as_found(model, step_mode):
        model.to(target)
        torch.cuda.synchronize(target)
        torch.cuda.reset_peak_memory_stats(target)
        baseline = torch.cuda.memory_allocated(target) - others
        run_step(model, x, step_mode, amp)
        torch.cuda.synchronize(target)
        peak = torch.cuda.max_memory_allocated(target) - others
    return PeakMemory(
        peak_mb=peak / _MB,
        baseline_mb=baseline / _MB,
        method="cuda-allocator",
        device=str(target),
        mode=step_mode,
        input_shape=shape,
        threads=torch.get_num_threads(),
    )


def _bytes_on(model: nn.Module, target: torch.device) -> int:
    """Bytes of ``model``'s parameters and buffers already on ``target`` (each storage once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.device != target:
            continue
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            total += storage.nbytes()
    return total
