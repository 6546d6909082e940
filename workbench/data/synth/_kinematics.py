"""Pose the walker: periodic joint angles -> 3D capsules and ellipsoids for every frame.

World axes: ``x`` forward (walking direction), ``y`` up, ``z`` to the walker's left. Lengths are
fractions of standing height. The body hangs from the hip-joint midpoint at the origin; alignment
later crops head top to lowest foot, so neither ground contact nor forward progress is modelled.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.data.synth._body import SubjectParams

TWO_PI = 2.0 * np.pi

# Rows of ``Scene.joints``: the joint pairs whose mean height marks a part boundary (the neck comes
# from the head ellipsoid's lowest point instead).
JOINT_NAMES: tuple[str, ...] = ("shoulders", "hips", "knees", "ankles")


@dataclass(frozen=True)
class Scene:
    """Every primitive of every frame, in world coordinates.

    ``cap_a``, ``cap_b``: capsule end points ``[f, k, 3]``; ``cap_r``: radii ``[f, k]``;
    ``ell_c``: ellipsoid centres ``[f, e, 3]``; ``ell_m``: shape matrices ``R diag(axes^2) R^T``
    ``[f, e, 3, 3]``; ``head``: index of the head ellipsoid; ``joints``: ``[f, 4, 3]`` midpoints of
    the shoulders, hips, knees and ankles.
    """

    cap_a: np.ndarray
    cap_b: np.ndarray
    cap_r: np.ndarray
    ell_c: np.ndarray
    ell_m: np.ndarray
    head: int
    joints: np.ndarray


def _bump(phase: np.ndarray, centre: float, sharpness: float) -> np.ndarray:
    """A smooth periodic bump peaking (at 1) when ``phase`` (cycle fraction) equals ``centre``."""
    return np.exp(sharpness * (np.cos(TWO_PI * (phase - centre)) - 1.0))


def _sagittal(angle_deg: np.ndarray) -> np.ndarray:
    """Unit vectors ``[f, 3]`` pointing down, swung forward by ``angle_deg``."""
    a = np.radians(angle_deg)
    out = np.zeros((a.shape[0], 3))
    out[:, 0] = np.sin(a)
    out[:, 1] = -np.cos(a)
    return out


def _rotation(pitch_deg: np.ndarray, yaw_deg: np.ndarray) -> np.ndarray:
    """Rotations ``[f, 3, 3]``: tilt ``+y`` forward by ``pitch`` (about ``z``), then turn by ``yaw`` (about ``y``)."""
    p, y = np.radians(pitch_deg), np.radians(yaw_deg)
    cp, sp, cy, sy = np.cos(p), np.sin(p), np.cos(y), np.sin(y)
    # yaw @ pitch, multiplied out.
    out = np.empty((p.shape[0], 3, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 0, 2] = cy * cp, cy * sp, sy
    out[:, 1, 0], out[:, 1, 1], out[:, 1, 2] = -sp, cp, 0.0
    out[:, 2, 0], out[:, 2, 1], out[:, 2, 2] = -sy * cp, -sy * sp, cy
    return out


class _SceneBuilder:
    """Collects primitives frame-batched, then stacks them into a ``Scene``."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.capsules: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.ellipsoids: list[tuple[np.ndarray, np.ndarray]] = []

    def capsule(self, a: np.ndarray, b: np.ndarray, radius: float | np.ndarray) -> None:
        self.capsules.append((a, b, np.broadcast_to(np.asarray(radius, dtype=float), (self.frames,))))

    def ellipsoid(self, centre: np.ndarray, rotation: np.ndarray, axes: np.ndarray) -> int:
        axes = np.broadcast_to(np.asarray(axes, dtype=float), (self.frames, 3))
        shape = (rotation * (axes**2)[:, None, :]) @ rotation.transpose(0, 2, 1)
        self.ellipsoids.append((centre, shape))
        return len(self.ellipsoids) - 1

    def build(self, head: int, joints: np.ndarray) -> Scene:
        return Scene(
            cap_a=np.stack([c[0] for c in self.capsules], axis=1),
            cap_b=np.stack([c[1] for c in self.capsules], axis=1),
            cap_r=np.stack([c[2] for c in self.capsules], axis=1),
            ell_c=np.stack([e[0] for e in self.ellipsoids], axis=1),
            ell_m=np.stack([e[1] for e in self.ellipsoids], axis=1),
            head=head,
            joints=joints,
        )


def pose_scene(body: SubjectParams, condition: str, phase: np.ndarray) -> Scene:
    """The walker at each gait ``phase`` (cycle fractions ``[f]``; 0 is the left heel strike).

    ``condition``: ``nm`` plain, ``bg`` with the subject's bag, ``cl`` in the subject's coat.
    """
    frames = phase.shape[0]
    zeros = np.zeros(frames)
    scene = _SceneBuilder(frames)
    coat = condition == "cl"
    sleeve = body.coat_bulk if coat else 1.0
    hand_bag = condition == "bg" and body.bag_kind == "hand"

    # Pelvis turns towards the leading leg; the shoulders counter-rotate.
    pelvis_yaw = body.pelvis_yaw * np.cos(TWO_PI * (phase + 0.05))
    shoulder_yaw = -0.6 * pelvis_yaw
    lean = np.full(frames, body.torso_lean)
    spine = _sagittal(180.0 - lean)  # up, tilted forward by the lean
    shoulder_mid = body.torso_length * spine

    legs: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    arms: dict[float, np.ndarray] = {}
    for side, leg_phase in ((1.0, phase), (-1.0, phase + 0.5)):
        yaw = np.radians(pelvis_yaw)
        hip = np.stack([side * 0.5 * body.hip_width * np.sin(yaw), zeros, side * 0.5 * body.hip_width * np.cos(yaw)], -1)
        hip_angle = body.hip_offset + body.hip_amplitude * np.cos(TWO_PI * (leg_phase + 0.05))
        knee_angle = (
            3.0
            + body.knee_stance * _bump(leg_phase, 0.13, 14.0)
            + body.knee_swing * _bump(leg_phase, body.knee_swing_phase, 9.0)
        )
        knee = hip + body.thigh_length * _sagittal(hip_angle)
        ankle = knee + body.shin_length * _sagittal(hip_angle - knee_angle)
        scene.capsule(hip, knee, body.thigh_radius)
        scene.capsule(knee, ankle, body.shin_radius)
        # Toe up at heel strike, toe down at push-off, flat through stance and mid-swing.
        foot_pitch = 14.0 * _bump(leg_phase, 0.02, 16.0) - 35.0 * _bump(leg_phase, 0.62, 14.0)
        foot_rot = _rotation(-foot_pitch, np.full(frames, -side * 6.0))  # toes turned slightly out
        heel_to_centre = np.array([0.25 * body.foot_length, -0.55 * body.ankle_height, 0.0])
        foot_axes = np.array([0.5 * body.foot_length, 0.55 * body.ankle_height + 0.01, body.foot_width])
        scene.ellipsoid(ankle + foot_rot @ heel_to_centre, foot_rot, foot_axes)
        legs[side] = (knee, ankle)

        # Arms swing against the leg on the same side; the elbow bends more as the arm comes forward.
        swing = body.arm_swing * (0.35 if hand_bag and side == body.bag_side else 1.0)
        arm_angle = body.arm_offset - swing * np.cos(TWO_PI * (leg_phase + 0.05))
        elbow_angle = body.elbow_flex * (0.7 + 0.3 * np.clip(arm_angle / max(swing, 1e-3), -1.0, 1.0))
        abduction = np.radians(body.arm_abduction)
        syaw = np.radians(shoulder_yaw)
        half = 0.5 * body.shoulder_width
        shoulder = shoulder_mid + np.stack([side * half * np.sin(syaw), zeros, side * half * np.cos(syaw)], -1)
        upper = _sagittal(arm_angle)
        upper = np.stack([upper[:, 0], upper[:, 1] * np.cos(abduction), side * -upper[:, 1] * np.sin(abduction)], -1)
        elbow = shoulder + body.upper_arm_length * upper
        lower = _sagittal(arm_angle + elbow_angle)
        lower = np.stack([lower[:, 0], lower[:, 1] * np.cos(abduction), side * -lower[:, 1] * np.sin(abduction)], -1)
        hand = elbow + body.forearm_length * lower
        scene.capsule(shoulder, elbow, body.upper_arm_radius * sleeve)
        scene.capsule(elbow, hand, body.forearm_radius * sleeve)
        arms[side] = np.stack([shoulder, hand], axis=1)

    shoulders = 0.5 * (arms[1.0][:, 0] + arms[-1.0][:, 0])
    scene.capsule(arms[1.0][:, 0], arms[-1.0][:, 0], body.upper_arm_radius * 1.1 * sleeve)

    # Torso: chest and pelvis ellipsoids, a coat widens the chest and hangs a skirt over the thighs.
    chest_rot = _rotation(lean, shoulder_yaw)
    chest_axes = np.array([body.chest_depth, 0.46 * body.torso_length, body.chest_width])
    if coat:
        chest_axes = chest_axes * np.array([body.coat_bulk, 1.05, body.coat_bulk])
    chest = scene.ellipsoid(0.6 * body.torso_length * spine, chest_rot, chest_axes)
    pelvis_rot = _rotation(0.5 * lean, pelvis_yaw)
    scene.ellipsoid(0.12 * body.torso_length * spine, pelvis_rot, np.array([body.pelvis_depth, 0.1, body.pelvis_width]))
    if coat:
        knee_gap = np.abs(legs[1.0][0][:, 0] - legs[-1.0][0][:, 0])
        hem = body.coat_length * body.thigh_length
        centre = np.stack([0.3 * (legs[1.0][0][:, 0] + legs[-1.0][0][:, 0]), np.full(frames, 0.05 - 0.5 * hem), zeros], -1)
        axes = np.stack([
            body.pelvis_depth * body.coat_bulk + 0.3 * knee_gap,
            np.full(frames, 0.5 * hem + 0.09),
            np.full(frames, body.pelvis_width * body.coat_bulk),
        ], -1)  # fmt: skip
        scene.ellipsoid(centre, pelvis_rot, axes)

    # Neck and head, bent forward by the lean plus the head's own forward carriage.
    neck_dir = _sagittal(180.0 - lean - body.head_forward)
    neck_top = shoulder_mid + body.neck_length * neck_dir
    scene.capsule(shoulder_mid - 0.03 * spine, neck_top, body.neck_radius)
    head_rot = _rotation(lean + 0.5 * body.head_forward, zeros)
    head_centre = neck_top + 0.42 * body.head_height * neck_dir + np.array([0.15 * body.head_depth, 0.0, 0.0])
    head = scene.ellipsoid(head_centre, head_rot, np.array([body.head_depth, 0.5 * body.head_height, body.head_width]))

    if condition == "bg":
        _add_bag(scene, body, phase, spine, chest_rot, chest, arms, chest_axes)

    hips = np.zeros((frames, 3))
    knees = 0.5 * (legs[1.0][0] + legs[-1.0][0])
    ankles = 0.5 * (legs[1.0][1] + legs[-1.0][1])
    return scene.build(head, np.stack([shoulders, hips, knees, ankles], axis=1))


def _add_bag(
    scene: _SceneBuilder,
    body: SubjectParams,
    phase: np.ndarray,
    spine: np.ndarray,
    chest_rot: np.ndarray,
    chest: int,
    arms: dict[float, np.ndarray],
    chest_axes: np.ndarray,
) -> None:
    """The subject's bag: a backpack on the back, a shoulder bag at the hip, or a bag in one hand."""
    frames = phase.shape[0]
    size = body.bag_scale
    side = body.bag_side
    bob = 0.006 * np.cos(2.0 * TWO_PI * phase)
    if body.bag_kind == "backpack":
        axes = size * np.array([0.06, 0.125, 0.095])
        back = chest_rot @ np.array([-(chest_axes[0] + 0.8 * axes[0]), 0.02, 0.0])
        centre = scene.ellipsoids[chest][0] + back + bob[:, None] * np.array([0.0, 1.0, 0.0])
        scene.ellipsoid(centre, chest_rot, axes)
    elif body.bag_kind == "shoulder":
        axes = size * np.array([0.1, 0.08, 0.035])
        sway = 0.025 * np.sin(TWO_PI * phase)
        centre = np.stack([
            sway, np.full(frames, -0.02) + bob, np.full(frames, side * (body.pelvis_width + axes[2]))
        ], -1)  # fmt: skip
        scene.ellipsoid(centre, _rotation(4.0 * np.sin(TWO_PI * phase), np.zeros(frames)), axes)
        # The strap runs from the opposite shoulder across the chest to the bag.
        scene.capsule(arms[-side][:, 0], centre + np.array([0.0, axes[1], 0.0]), 0.008)
    else:
        axes = size * np.array([0.09, 0.075, 0.035])
        hand = arms[side][:, 1]
        centre = hand + np.array([0.0, -0.8 * axes[1], side * 0.01])
        scene.ellipsoid(centre, _rotation(np.zeros(frames), np.zeros(frames)), axes)
