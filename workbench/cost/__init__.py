"""Cost of a model: parameters, forward FLOPs, latency and peak memory.

Parameters and FLOPs are read from a weightless meta-device build (no data runs, well under a
second even for the largest preset); latency and peak memory run real steps on CPU or CUDA.

Example::

    from workbench.cost import estimate_cost
    report = estimate_cost("hstl-casia-b", measure=("params", "flops"))
    print(report.table())
"""

from __future__ import annotations

from workbench.cost._flops import FlopCount, count_flops
from workbench.cost._latency import LatencyStats, measure_latency
from workbench.cost._memory import PeakMemory, measure_peak_memory
from workbench.cost._params import ParameterCount, count_parameters
from workbench.cost._report import MEASURES, CostReport, estimate_cost
from workbench.cost._source import ModelRecipe
from workbench.cost._step import MODES

__all__ = [
    "MEASURES",
    "MODES",
    "CostReport",
    "FlopCount",
    "LatencyStats",
    "ModelRecipe",
    "ParameterCount",
    "PeakMemory",
    "count_flops",
    "count_parameters",
    "estimate_cost",
    "measure_latency",
    "measure_peak_memory",
]
