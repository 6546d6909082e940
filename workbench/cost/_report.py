"""``CostReport`` and ``estimate_cost``: every cost figure of one model in one record."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from workbench.cost._flops import count_flops
from workbench.cost._latency import WARMUP_STEPS, measure_latency
from workbench.cost._memory import measure_peak_memory
from workbench.cost._params import count_parameters
from workbench.cost._source import as_recipe, source_label
from workbench.cost._step import check_mode, check_shape
from workbench.models import autocast, check_amp, resolve_amp, resolve_device

MEASURES: tuple[str, ...] = ("params", "flops", "latency", "memory")


@dataclasses.dataclass(frozen=True)
class CostReport:
    """Parameters, forward GFLOPs, latency and peak memory of one model on one input shape.

    A figure that was not measured is ``None``. ``params_by_module`` and ``gflops_by_module`` break
    the totals down by top-level child module.
    """

    model: str
    input_shape: tuple[int, ...]
    device: str
    mode: str
    threads: int
    torch_version: str
    amp: str = "off"
    params: int | None = None
    gflops: float | None = None
    latency_ms: float | None = None
    latency_p10_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_repeats: int | None = None
    peak_memory_mb: float | None = None
    peak_memory_delta_mb: float | None = None
    memory_method: str | None = None
    params_by_module: Mapping[str, int] = dataclasses.field(default_factory=dict)
    gflops_by_module: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Flat ``{name: value}`` for MLflow: numbers are metrics, strings are params; ``None`` is left out.

        Breakdowns become ``params.<child>`` and ``gflops.<child>``; the shape becomes ``"1x30x64x44"``.
        """
        flat: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in ("params_by_module", "gflops_by_module"):
                prefix = field.name.split("_by_")[0]
                flat.update({f"{prefix}.{name}": v for name, v in value.items()})
            elif field.name == "input_shape":
                flat[field.name] = "x".join(str(d) for d in value)
            elif value is not None:
                flat[field.name] = value
        return flat

    def table(self) -> str:
        """A human-readable multi-line table of the report."""
        shape = "x".join(str(d) for d in self.input_shape)
        rows: list[tuple[str, str]] = [
            ("model", self.model),
            ("input shape", shape),
            ("device", f"{self.device}, {self.threads} thread(s), torch {self.torch_version}"
                       + ("" if self.amp == "off" else f", autocast {self.amp}")),
        ]
        if self.params is not None:
            rows.append(("parameters", f"{self.params:,}"))
            rows.extend((f"  {name}", f"{count:,}") for name, count in self.params_by_module.items())
        if self.gflops is not None:
            rows.append(("forward GFLOP", f"{self.gflops:.2f}"))
            rows.extend((f"  {name}", f"{g:.2f}") for name, g in self.gflops_by_module.items())
        if self.latency_ms is not None:
            rows.append((
                f"latency ({self.mode}) ms",
                f"median {self.latency_ms:.1f}, p10 {self.latency_p10_ms:.1f}, p90 {self.latency_p90_ms:.1f} "
                f"({self.latency_repeats} runs)",
            ))
        if self.peak_memory_mb is not None:
            rows.append((
                f"peak memory ({self.mode}) MiB",
                f"{self.peak_memory_mb:.1f} raw, {self.peak_memory_delta_mb:.1f} added by the step "
                f"[{self.memory_method}]",
            ))
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label.ljust(width)}  {value}" for label, value in rows)

    def __str__(self) -> str:
        return self.table()


def estimate_cost(
    spec_or_name: Any,
    *,
    frames: int = 30,
    height: int = 64,
    width: int = 44,
    batch: int = 1,
    input_shape: Sequence[int] | None = None,
    device: str | torch.device = "auto",
    measure: Iterable[str] = MEASURES,
    mode: str = "inference",
    warmup: int = WARMUP_STEPS,
    repeats: int = 5,
    threads: int | None = None,
    progress: Callable[[str], None] | None = None,
    amp: str = "off",
) -> CostReport:
    """Measure the requested figures of a registry name, spec, :class:`ModelRecipe` or ``nn.Module``.

    ``measure`` picks from ``params``, ``flops``, ``latency``, ``memory``. Parameters and FLOPs never
    run real data (meta device); latency and memory run ``mode`` steps on ``device`` (``auto``: CUDA
    when available). ``threads`` sets torch's CPU thread count for the measurements (restored after).
    ``progress`` is called with each figure's name just before it is measured (for progress bars).
    ``amp`` (``"off"``, ``"bf16"``, ``"fp16"`` on CUDA) runs the latency and memory steps under autocast;
    parameters and FLOPs do not depend on it.
    """
    wanted = tuple(dict.fromkeys(measure))
    unknown = [m for m in wanted if m not in MEASURES]
    if unknown:
        raise ValueError(f"measure={unknown!r}: unknown figure(s); choose from {', '.join(MEASURES)}")
    step_mode = check_mode(mode)
    shape = check_shape(input_shape if input_shape is not None else (batch, frames, height, width))
    timed = bool({"latency", "memory"} & set(wanted))
    target = resolve_device(device) if timed else torch.device("cpu")
    amp = resolve_amp(check_amp(amp), target)
    if timed:
        autocast(target, amp)  # fp16 without CUDA fails before any figure is measured
    label = source_label(spec_or_name)
    figures: dict[str, Any] = {}

    def starting(name: str) -> bool:
        if name in wanted and progress is not None:
            progress(name)
        return name in wanted

    with _thread_count(threads):
        if starting("params"):
            params = count_parameters(_meta_model(spec_or_name))
            figures.update(params=params.total, params_by_module=dict(params.by_module))
        if starting("flops"):
            flops = count_flops(spec_or_name, input_shape=shape)
            figures.update(
                gflops=flops.gflops,
                gflops_by_module={name: f / 1e9 for name, f in flops.at_depth(1).items()},
            )
        if starting("latency"):
            latency = measure_latency(
                _live_model(spec_or_name, target), shape, target, warmup=warmup, repeats=repeats, mode=step_mode,
                amp=amp,
            )
            figures.update(
                latency_ms=latency.median_ms,
                latency_p10_ms=latency.p10_ms,
                latency_p90_ms=latency.p90_ms,
                latency_repeats=latency.repeats,
            )
        if starting("memory"):
            memory = measure_peak_memory(spec_or_name, shape, target, mode=step_mode, amp=amp)
            figures.update(
                peak_memory_mb=memory.peak_mb,
                peak_memory_delta_mb=memory.delta_mb,
                memory_method=memory.method,
            )
        n_threads = torch.get_num_threads()
    return CostReport(
        model=label,
        input_shape=shape,
        device=str(target),
        mode=step_mode,
        threads=n_threads,
        torch_version=torch.__version__,
        amp=amp,
        **figures,
    )


def _meta_model(source: Any) -> nn.Module:
    """The model itself, or a weightless meta-device build of it (parameter counts need shapes only)."""
    if isinstance(source, nn.Module):
        return source
    recipe = as_recipe(source)
    assert recipe is not None
    try:
        with torch.device("meta"):
            return recipe.build()
    except (NotImplementedError, RuntimeError):
        return recipe.build()


def _live_model(source: Any, device: torch.device) -> nn.Module:
    if isinstance(source, nn.Module):
        return source
    recipe = as_recipe(source)
    assert recipe is not None
    with torch.device(device):
        return recipe.build()


@contextlib.contextmanager
def _thread_count(threads: int | None) -> Iterator[None]:
    if threads is None:
        yield
        return
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads={threads!r}: expected an integer >= 1")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
