"""Synthetic renderer speed: 64x64 frames per second on one core (target: at least 2,000).

Timed with the process's CPU clock, so a busy machine slows the wall clock but not the figure; BLAS
is held to one thread so the figure is one core's. The same pipeline called one frame at a time
is timed in the same run as the baseline for the batching ratio.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from workbench.data.synth import SynthConfig, render_dataset_sequence
from workbench.data.synth._body import sample_subject, subject_rng
from workbench.data.synth._kinematics import pose_scene
from workbench.data.synth._raster import draw_aligned, project, view_basis

pytestmark = pytest.mark.benchmark

TARGET_FPS = 2000.0
CONFIG = SynthConfig()
# A spread of conditions and views, like the default dataset's mix.
JOBS = [
    (subject, seq_type, view)
    for subject in (1, 2, 3)
    for seq_type in ("nm-01", "bg-01", "cl-01", "nm-05")
    for view in (0, 54, 90, 144, 180)
]


def _rate(run: object) -> tuple[float, float, int]:
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    frames = run()  # type: ignore[operator]
    return frames / (time.process_time() - start_cpu), frames / (time.perf_counter() - start_wall), frames


def _render_all() -> int:
    return sum(len(render_dataset_sequence(CONFIG, *job).silhouettes) for job in JOBS)


def _frame_by_frame(count: int) -> int:
    """Baseline: the same pipeline (pose, project, draw, coverage) called once per frame, no batching."""
    body = sample_subject(subject_rng(0, 1))
    basis = view_basis(90.0, 6.0)
    for f in range(count):
        scene = pose_scene(body, "nm", np.array([f / body.cadence]))
        canvas, _, _ = draw_aligned(project(scene, basis), 64)
        canvas.to_uint8()
    return count


def test_render_speed_one_core() -> None:
    with threadpool_limits(1):
        render_dataset_sequence(CONFIG, 4, "nm-01", 90)  # warm up imports and caches
        cpu_fps, wall_fps, frames = _rate(_render_all)
        base_cpu, _, _ = _rate(lambda: _frame_by_frame(300))
    print(
        f"\nsynth render: {frames} frames of 64x64, {cpu_fps:,.0f} frames/s per CPU second "
        f"({wall_fps:,.0f}/s wall); frame-by-frame baseline {base_cpu:,.0f}/s: "
        f"ratio {cpu_fps / base_cpu:.1f}x; target {TARGET_FPS:,.0f}/s: ratio {cpu_fps / TARGET_FPS:.2f}"
    )
    assert cpu_fps >= TARGET_FPS
