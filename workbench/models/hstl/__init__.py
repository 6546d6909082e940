"""The HSTL family: its spec, the network, the registered presets and OpenGait checkpoint interop.

Importing the package registers the family (``hstl``) and its models (``hstl-casia-b``, ``hstl-oumvlp``,
``hstl-gait3d``, ``hstl-small``); ``workbench.models`` re-exports the public names.
"""

from __future__ import annotations

from workbench.models.hstl._model import HSTL
from workbench.models.hstl._opengait_export import export_opengait, opengait_model_cfg, opengait_state_dict
from workbench.models.hstl._opengait_io import (
    PAPER_TREES,
    GuessedSplitsWarning,
    hstl_weights,
    load_opengait_checkpoint,
    read_checkpoint_file,
    resolve_tree,
    spec_from_model_cfg,
    spec_from_state_dict,
    unpickling_refusal,
)
from workbench.models.hstl._presets import (
    CASIA_B_SPEC,
    GAIT3D_SPEC,
    HSTL_FAMILY,
    OUMVLP_SPEC,
    PRESET_SPECS,
    SMALL_CHANNELS,
    SMALL_SPEC,
)
from workbench.models.hstl._spec import PAPER_CHANNELS, HSTLSpec, StageSpec

__all__ = [
    "CASIA_B_SPEC",
    "GAIT3D_SPEC",
    "HSTL",
    "HSTL_FAMILY",
    "OUMVLP_SPEC",
    "PAPER_CHANNELS",
    "PAPER_TREES",
    "PRESET_SPECS",
    "SMALL_CHANNELS",
    "SMALL_SPEC",
    "GuessedSplitsWarning",
    "HSTLSpec",
    "StageSpec",
    "export_opengait",
    "hstl_weights",
    "load_opengait_checkpoint",
    "opengait_model_cfg",
    "opengait_state_dict",
    "read_checkpoint_file",
    "resolve_tree",
    "spec_from_model_cfg",
    "spec_from_state_dict",
    "unpickling_refusal",
]
