"""A walker's identity: body proportions, limb widths and gait style, drawn per subject and jittered per sequence."""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

BAG_KINDS: tuple[str, ...] = ("backpack", "shoulder", "hand")

# Fields grouped by how a per-sequence jitter treats them: lengths and widths scale, angles shift.
_LENGTHS = (
    "head_height", "neck_length", "torso_length", "thigh_length", "shin_length", "ankle_height",
    "foot_length", "upper_arm_length", "forearm_length",
)  # fmt: skip
_WIDTHS = (
    "head_width", "head_depth", "shoulder_width", "chest_width", "chest_depth", "hip_width",
    "pelvis_width", "pelvis_depth", "neck_radius", "upper_arm_radius", "forearm_radius", "thigh_radius",
    "shin_radius", "foot_width",
)  # fmt: skip
_ANGLES = (
    "hip_amplitude", "hip_offset", "knee_stance", "knee_swing", "arm_swing", "arm_offset", "elbow_flex",
    "arm_abduction", "torso_lean", "head_forward", "pelvis_yaw",
)  # fmt: skip


@dataclass(frozen=True)
class SubjectParams:
    """One subject's body and gait; lengths are fractions of standing height, angles in degrees.

    Everything that tells subjects apart lives here: proportions, widths, stride (hip amplitude), arm
    swing, knee flexion profile, cadence (frames per gait cycle) and posture (torso lean, head forward).
    The subject's bag and coat (used by ``bg`` / ``cl`` sequences) are drawn with it.
    """

    head_height: float
    head_width: float
    head_depth: float
    neck_length: float
    neck_radius: float
    torso_length: float
    shoulder_width: float
    chest_width: float
    chest_depth: float
    hip_width: float
    pelvis_width: float
    pelvis_depth: float
    thigh_length: float
    shin_length: float
    ankle_height: float
    foot_length: float
    foot_width: float
    upper_arm_length: float
    forearm_length: float
    upper_arm_radius: float
    forearm_radius: float
    thigh_radius: float
    shin_radius: float
    cadence: float
    hip_amplitude: float
    hip_offset: float
    knee_stance: float
    knee_swing: float
    knee_swing_phase: float
    arm_swing: float
    arm_offset: float
    elbow_flex: float
    arm_abduction: float
    torso_lean: float
    head_forward: float
    pelvis_yaw: float
    bag_kind: str
    bag_side: float
    bag_scale: float
    coat_length: float
    coat_bulk: float

    def standing_height(self) -> float:
        """Height of the upright body (ankle to head top) in the units of the length fields."""
        return (
            self.ankle_height + self.shin_length + self.thigh_length + self.torso_length
            + self.neck_length + self.head_height
        )  # fmt: skip


def subject_rng(seed: int, subject: int) -> np.random.Generator:
    """The generator a dataset uses to draw subject number ``subject`` (1-based) under ``seed``."""
    return np.random.default_rng(np.random.SeedSequence([seed, subject, 0x5B1EC7]))


def sequence_rng(seed: int, subject: int, seq_type: str, view: int) -> np.random.Generator:
    """The generator a dataset uses for one sequence; depends only on (seed, subject, type, view)."""
    type_key = zlib.crc32(seq_type.encode("utf-8"))
    return np.random.default_rng(np.random.SeedSequence([seed, subject, type_key, int(view), 0x5E0]))


def sample_subject(rng: np.random.Generator) -> SubjectParams:
    """Draw one subject's body and gait from ``rng``."""

    def scaled(mean: float, spread: float) -> float:
        return float(mean * np.exp(rng.normal(0.0, spread)))

    def uniform(low: float, high: float) -> float:
        return float(rng.uniform(low, high))

    # Overall build: heavier subjects are wider everywhere, on top of each part's own variation.
    bulk = float(np.exp(rng.normal(0.0, 0.12)))

    def width(mean: float, spread: float = 0.08) -> float:
        return scaled(mean * bulk, spread)

    lengths = {
        "head_height": scaled(0.13, 0.07),
        "neck_length": scaled(0.05, 0.2),
        "torso_length": scaled(0.29, 0.07),
        "thigh_length": scaled(0.245, 0.07),
        "shin_length": scaled(0.245, 0.07),
        "ankle_height": scaled(0.04, 0.1),
        "foot_length": scaled(0.15, 0.07),
        "upper_arm_length": scaled(0.175, 0.07),
        "forearm_length": scaled(0.2, 0.07),
    }
    # Normalise so the upright body is exactly one unit tall; proportions are what identify a subject.
    total = sum(lengths[k] for k in ("head_height", "neck_length", "torso_length", "thigh_length",
                                     "shin_length", "ankle_height"))  # fmt: skip
    lengths = {k: v / total for k, v in lengths.items()}
    return SubjectParams(
        **lengths,
        head_width=width(0.048, 0.07),
        head_depth=width(0.056, 0.07),
        neck_radius=width(0.028, 0.12),
        shoulder_width=width(0.2, 0.08),
        chest_width=width(0.1, 0.1),
        chest_depth=width(0.065, 0.14),
        hip_width=width(0.1, 0.08),
        pelvis_width=width(0.095, 0.1),
        pelvis_depth=width(0.07, 0.14),
        foot_width=width(0.03, 0.1),
        upper_arm_radius=width(0.028, 0.14),
        forearm_radius=width(0.022, 0.14),
        thigh_radius=width(0.045, 0.14),
        shin_radius=width(0.032, 0.14),
        cadence=uniform(24.0, 36.0),
        hip_amplitude=uniform(14.0, 25.0),
        hip_offset=uniform(3.0, 11.0),
        knee_stance=uniform(3.0, 22.0),
        knee_swing=uniform(45.0, 70.0),
        knee_swing_phase=uniform(0.68, 0.77),
        arm_swing=uniform(5.0, 32.0),
        arm_offset=uniform(-6.0, 8.0),
        elbow_flex=uniform(5.0, 40.0),
        arm_abduction=uniform(2.0, 14.0),
        torso_lean=uniform(-3.0, 12.0),
        head_forward=uniform(-5.0, 20.0),
        pelvis_yaw=uniform(2.0, 9.0),
        bag_kind=BAG_KINDS[int(rng.integers(len(BAG_KINDS)))],
        bag_side=float(rng.choice([-1.0, 1.0])),
        bag_scale=uniform(0.8, 1.3),
        coat_length=uniform(0.45, 1.1),
        coat_bulk=uniform(1.1, 1.45),
    )


def vary_subject(subject: SubjectParams, rng: np.random.Generator, strength: float = 1.0) -> SubjectParams:
    """The subject as it appears in one sequence: small random changes of body and gait (``strength`` 0: none)."""
    changes: dict[str, Any] = {}
    for name in _LENGTHS:
        changes[name] = getattr(subject, name) * float(np.exp(rng.normal(0.0, 0.02 * strength)))
    for name in _WIDTHS:
        changes[name] = getattr(subject, name) * float(np.exp(rng.normal(0.0, 0.05 * strength)))
    for name in _ANGLES:
        changes[name] = getattr(subject, name) + float(rng.normal(0.0, 2.0 * strength))
    changes["cadence"] = subject.cadence * float(np.exp(rng.normal(0.0, 0.05 * strength)))
    changes["knee_swing_phase"] = subject.knee_swing_phase + float(rng.normal(0.0, 0.01 * strength))
    return dataclasses.replace(subject, **changes)
