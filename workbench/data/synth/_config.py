"""``SynthConfig``: which subjects, views, types and frame counts the synthetic renderer writes."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

CASIA_B_VIEWS: tuple[int, ...] = tuple(range(0, 181, 18))
CASIA_B_TYPES: tuple[str, ...] = (
    *(f"nm-{i:02d}" for i in range(1, 7)),
    "bg-01",
    "bg-02",
    "cl-01",
    "cl-02",
)
CONDITIONS: tuple[str, ...] = ("nm", "bg", "cl")
SIZES: tuple[int, ...] = (64, 128)

_TYPE_PATTERN = re.compile(r"^(nm|bg|cl)-(\d{2})$")


def condition_of(seq_type: str) -> str:
    """The walking condition (``nm``, ``bg`` or ``cl``) of a CASIA-B style type name like ``bg-01``."""
    match = _TYPE_PATTERN.match(seq_type) if isinstance(seq_type, str) else None
    if match is None:
        raise ValueError(
            f"unknown sequence type {seq_type!r}: expected nm-NN (normal walking), bg-NN (carrying a bag) "
            "or cl-NN (wearing a coat), e.g. nm-01"
        )
    return match.group(1)


def view_name(view: int) -> str:
    """The OpenGait folder name of a view angle: ``90 -> "090"``."""
    return f"{int(view):03d}"


def subject_name(subject: int, subjects: int) -> str:
    """The zero-padded id of a 1-based subject number: ``7 -> "007"`` (wider when there are 1000+)."""
    return f"{subject:0{max(3, len(str(subjects)))}d}"


@dataclass(frozen=True)
class SynthConfig:
    """What ``render_dataset`` writes: subjects x types x views sequences of ``frames`` frames each.

    The default mirrors CASIA-B's design at a smaller scale: 50 subjects (30 train, 20 test) x 10 types
    x 11 views = 5,500 sequences, about 412,700 frames of 64x64 (1.7 GB of pkl files). Rendering it
    takes about 75 CPU-seconds: roughly 40 s with ``workers=2`` on two free cores.

    Args:
        subjects: number of subjects, ids ``001``, ``002``, ...
        views: azimuths in degrees, 0 (walking towards the camera) .. 90 (side) .. 180 (walking away).
        types: CASIA-B style type names, ``nm-NN`` / ``bg-NN`` / ``cl-NN``.
        frames: (min, max) frames per sequence; each sequence draws its length in this range.
        seed: seeds every random draw; the same seed gives the same bytes.
        size: output frame size, 64 (64x64) or 128 (128x128).
        train_fraction: share of subjects (the first ones) in ``TRAIN_SET``, counted without the
            validation subjects.
        validation_subjects: how many subjects are rendered after the test subjects and listed in
            ``TRAIN_SET`` for a study to hold out as its validation split (``validation_ids``).
            Subjects are seeded one by one, so adding them leaves every other subject as it was.
        noise: strength of segmentation noise and dropped frames (0 turns both off, 1 is the default).
        jitter: strength of the per-sequence variation of body and gait (0 repeats the subject exactly).
    """

    subjects: int = 50
    views: tuple[int, ...] = CASIA_B_VIEWS
    types: tuple[str, ...] = CASIA_B_TYPES
    frames: tuple[int, int] = (60, 90)
    seed: int = 0
    size: int = 64
    train_fraction: float = 0.6
    noise: float = 1.0
    jitter: float = 1.0
    validation_subjects: int = 0

    def __post_init__(self) -> None:
        # Lists from TOML/YAML or callers become tuples so the config stays hashable and picklable.
        object.__setattr__(self, "views", tuple(self.views))
        object.__setattr__(self, "types", tuple(self.types))
        object.__setattr__(self, "frames", tuple(self.frames))
        _validate(self)

    @classmethod
    def tiny(cls, **overrides: Any) -> SynthConfig:
        """4 subjects x 4 types x 3 views of 12-16 frames: 48 sequences, renders in a fraction of a second."""
        values: dict[str, Any] = {
            "subjects": 4,
            "views": (0, 90, 180),
            "types": ("nm-01", "nm-02", "bg-01", "cl-01"),
            "frames": (12, 16),
        }
        values.update(overrides)
        return cls(**values)

    @classmethod
    def default(cls, **overrides: Any) -> SynthConfig:
        """The CASIA-B-like default (50 subjects, 10 types, 11 views, 60-90 frames), with overrides."""
        return cls(**overrides)

    @property
    def subject_ids(self) -> list[str]:
        """Every subject id, in order."""
        return [subject_name(i, self.subjects) for i in range(1, self.subjects + 1)]

    @property
    def train_count(self) -> int:
        """How many of the first subjects train (at least one subject is left for testing).

        The validation subjects, rendered last, are not counted.
        """
        subjects = self.subjects - self.validation_subjects
        if subjects == 1:
            return 1
        return min(subjects - 1, max(1, math.floor(self.train_fraction * subjects + 0.5)))

    @property
    def validation_ids(self) -> list[str]:
        """The ids of the validation subjects: the last ``validation_subjects`` ids (none by default)."""
        return self.subject_ids[self.subjects - self.validation_subjects:]

    @property
    def test_ids(self) -> list[str]:
        """The ids of the test subjects: those after the training and before the validation subjects."""
        return self.subject_ids[self.train_count : self.subjects - self.validation_subjects]

    def replace(self, **changes: Any) -> SynthConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _validate(config: SynthConfig) -> None:
    if isinstance(config.subjects, bool) or not isinstance(config.subjects, int) or config.subjects < 1:
        raise ValueError(f"subjects: expected a whole number >= 1, got {config.subjects!r}")
    if not config.views:
        raise ValueError("views: expected at least one view angle, e.g. 0, 18, ..., 180")
    for view in config.views:
        if isinstance(view, bool) or not isinstance(view, int) or not 0 <= view <= 180:
            raise ValueError(f"views: {view!r} is not a whole number of degrees in 0..180 (CASIA-B: 0, 18, ..., 180)")
    if len(set(config.views)) != len(config.views):
        raise ValueError(f"views: {list(config.views)} lists a view twice; give each angle once")
    if not config.types:
        raise ValueError("types: expected at least one sequence type, e.g. nm-01")
    for seq_type in config.types:
        try:
            condition_of(seq_type)
        except ValueError as exc:
            raise ValueError(f"types: {exc}") from None
    if len(set(config.types)) != len(config.types):
        raise ValueError(f"types: {list(config.types)} lists a type twice; give each type once")
    frames = config.frames
    if (
        len(frames) != 2
        or any(isinstance(n, bool) or not isinstance(n, int) for n in frames)
        or not 1 <= frames[0] <= frames[1]
    ):
        raise ValueError(f"frames: expected (min, max) whole numbers with 1 <= min <= max, got {frames!r}")
    if isinstance(config.seed, bool) or not isinstance(config.seed, int) or config.seed < 0:
        raise ValueError(f"seed: expected a whole number >= 0, got {config.seed!r}")
    if config.size not in SIZES:
        raise ValueError(f"size: {config.size!r} is not supported; use 64 (64x64 frames) or 128 (128x128)")
    held = config.validation_subjects
    if isinstance(held, bool) or not isinstance(held, int) or held < 0:
        raise ValueError(f"validation_subjects: expected a whole number >= 0, got {held!r}")
    if held and config.subjects - held < 2:
        raise ValueError(
            f"validation_subjects: {held} of {config.subjects} subjects leaves fewer than 2 to train and test; "
            "raise subjects or lower validation_subjects"
        )
    if not 0.0 < config.train_fraction <= 1.0:
        raise ValueError(f"train_fraction: expected a share in (0, 1], got {config.train_fraction!r}")
    for name in ("noise", "jitter"):
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or not 0.0 <= value <= 5.0:
            raise ValueError(f"{name}: expected a strength in 0..5 (1 is the default, 0 turns it off), got {value!r}")
