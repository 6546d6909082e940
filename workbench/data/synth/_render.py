"""Render one synthetic gait sequence: jitter the subject, pose, project, rasterise, add noise, align."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.data.synth._body import SubjectParams, sample_subject, sequence_rng, subject_rng, vary_subject
from workbench.data.synth._config import SIZES, SynthConfig, condition_of
from workbench.data.synth._kinematics import JOINT_NAMES, pose_scene
from workbench.data.synth._raster import centre_columns, draw_aligned, project, segmentation_noise, view_basis

PART_NAMES: tuple[str, ...] = ("head", "neck", "torso", "thighs", "shins", "feet")
BOUNDARY_NAMES: tuple[str, ...] = ("neck", *JOINT_NAMES)

CAMERA_ELEVATION = 6.0  # degrees; a camera slightly above the hips, as in indoor gait corridors
DROP_RATE = 0.03  # share of frames lost (per unit of noise strength)


@dataclass(frozen=True)
class SynthSequence:
    """One rendered sequence: ``silhouettes: uint8 [frames, size, size]`` and the true part boundaries.

    ``boundary_rows: float [frames, 5]``: rows (continuous, 0 = top edge, at the ``size`` scale) of
    the neck, shoulders, hips, knees and ankles in each frame (``BOUNDARY_NAMES`` order).
    """

    silhouettes: np.ndarray
    boundary_rows: np.ndarray


def render_sequence(
    subject: SubjectParams,
    seq_type: str,
    view: float,
    frames: int,
    rng: np.random.Generator,
    *,
    size: int = 64,
    noise: float = 1.0,
    jitter: float = 1.0,
) -> SynthSequence:
    """Render ``frames`` frames of ``subject`` walking in condition ``seq_type`` (e.g. ``bg-01``) at azimuth ``view``.

    Every random choice (jitter, start phase, dropped frames, segmentation noise) comes from ``rng``,
    in an order that does not depend on the condition: the same generator state gives the same walk
    with and without bag or coat.

    Example:
        >>> subject = sample_subject(np.random.default_rng(0))
        >>> seq = render_sequence(subject, "nm-01", 90, 30, np.random.default_rng(1))
        >>> seq.silhouettes.shape
        (30, 64, 64)
    """
    condition = condition_of(seq_type)
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"frames: expected a whole number >= 1, got {frames!r}")
    if size not in SIZES:
        raise ValueError(f"size: {size!r} is not supported; use 64 or 128")
    if not 0.0 <= float(view) <= 180.0:
        raise ValueError(f"view: {view!r} is outside 0..180 degrees")
    if noise < 0 or jitter < 0:
        raise ValueError(f"noise and jitter must be >= 0, got noise={noise!r}, jitter={jitter!r}")
    frames = int(frames)

    body = vary_subject(subject, rng, jitter)
    azimuth = float(view) + rng.normal(0.0, 2.0 * jitter)
    elevation = CAMERA_ELEVATION + rng.normal(0.0, 1.0 * jitter)
    start = rng.uniform(0.0, 1.0)
    # Dropped frames: render a few more time steps than asked for and lose some at random.
    lost = int(rng.binomial(frames, min(0.5, DROP_RATE * noise))) if noise > 0 else 0
    kept = np.sort(rng.choice(frames + lost, size=frames, replace=False)) if lost else np.arange(frames)
    phase = start + kept / body.cadence

    scene = pose_scene(body, condition, phase)
    basis = view_basis(azimuth, elevation)
    projected = project(scene, basis)
    canvas, alignment, anchors = draw_aligned(projected, size)
    if noise > 0:
        segmentation_noise(canvas, anchors, rng, noise)
    silhouettes = centre_columns(canvas.to_uint8(), size)

    head_c = projected.ell_c[:, scene.head, 1]
    neck_v = head_c - np.sqrt(projected.ell_s[:, scene.head, 1, 1])
    joint_v = scene.joints @ basis[1]
    heights = np.concatenate([neck_v[:, None], joint_v], axis=1)
    return SynthSequence(silhouettes=silhouettes, boundary_rows=alignment.rows(heights))


def render_dataset_sequence(config: SynthConfig, subject: int, seq_type: str, view: int) -> SynthSequence:
    """Exactly the sequence ``render_dataset(out, config)`` writes for subject number ``subject`` (1-based)."""
    if not 1 <= subject <= config.subjects:
        raise ValueError(f"subject: {subject} is outside 1..{config.subjects}")
    params = sample_subject(subject_rng(config.seed, subject))
    rng = sequence_rng(config.seed, subject, seq_type, view)
    frames = int(rng.integers(config.frames[0], config.frames[1] + 1))
    return render_sequence(
        params, seq_type, view, frames, rng, size=config.size, noise=config.noise, jitter=config.jitter
    )
