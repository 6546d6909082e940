"""Synthetic gait data: an articulated 3D walker rendered as OpenGait-aligned silhouettes.

``render_dataset(out_dir, SynthConfig(...))`` writes the OpenGait layout
``<id>/<type>/<view>/<view>.pkl`` (``uint8 [frames, size, size]``), ``partition.json`` and
``ground_truth.json`` (per subject, the rows where the body parts meet, at the 64-row scale).
``render_sequence`` renders one sequence of any subject; ``render_dataset_sequence`` reproduces
exactly one sequence of a dataset.

Example:
    >>> from workbench.data.synth import SynthConfig, render_dataset
    >>> summary = render_dataset("data/synth-tiny", SynthConfig.tiny())  # doctest: +SKIP
"""

from __future__ import annotations

from workbench.data.synth._body import (
    BAG_KINDS,
    SubjectParams,
    sample_subject,
    sequence_rng,
    subject_rng,
    vary_subject,
)
from workbench.data.synth._config import (
    CASIA_B_TYPES,
    CASIA_B_VIEWS,
    CONDITIONS,
    SynthConfig,
    condition_of,
    subject_name,
    view_name,
)
from workbench.data.synth._dataset import GROUND_TRUTH_ROWS, SynthSummary, render_dataset
from workbench.data.synth._render import (
    BOUNDARY_NAMES,
    PART_NAMES,
    SynthSequence,
    render_dataset_sequence,
    render_sequence,
)

__all__ = [
    "BAG_KINDS",
    "BOUNDARY_NAMES",
    "CASIA_B_TYPES",
    "CASIA_B_VIEWS",
    "CONDITIONS",
    "GROUND_TRUTH_ROWS",
    "PART_NAMES",
    "SubjectParams",
    "SynthConfig",
    "SynthSequence",
    "SynthSummary",
    "condition_of",
    "render_dataset",
    "render_dataset_sequence",
    "render_sequence",
    "sample_subject",
    "sequence_rng",
    "subject_name",
    "subject_rng",
    "vary_subject",
    "view_name",
]
