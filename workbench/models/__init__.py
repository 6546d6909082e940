"""Gait models by family: shared layers, the family contract and registries; families live in subpackages
(``hstl``, ``gaitgs``) or single modules (``_gaitbase``), each registering itself when imported.

Example::

    from workbench.models import create_model
    model = create_model("hstl-casia-b")
    out = model(x)  # x: [n, s, 64, 44] in [0, 1] -> ModelOutput(embeddings, logits, inference)
"""

from __future__ import annotations

import importlib
import pkgutil

from workbench.models._device import resolve_device
from workbench.models._family import (
    GaitModel,
    ImportedWeights,
    ModelFamily,
    ModelSpec,
    Rebuild,
    SpecError,
    SpecFields,
    TreeCut,
)
from workbench.models._layers import (
    ARME,
    ASTP,
    FTA,
    ARMEStage,
    BasicConv2d,
    BasicConv3d,
    FTABlock,
    GeMHPP,
    SeparateFCs,
    Stem,
)
from workbench.models._maps import FeatureMapModel, FeatureMapReader, feature_map_reader
from workbench.models._output import ModelOutput
from workbench.models._precision import AMP_CHOICES, autocast, check_amp, native_bf16, resolve_amp
from workbench.models._registry import (
    build_model,
    create_model,
    cut_model,
    family_of,
    get_family,
    get_model_factory,
    list_families,
    list_models,
    model_family,
    register_family,
    register_model,
)
from workbench.models.gaitgs import (
    GAITGS_128_SPEC,
    GAITGS_SMALL_SPEC,
    GAITGS_SPEC,
    GaitGS,
    GaitGSSpec,
)
from workbench.models.hstl import (
    CASIA_B_SPEC,
    GAIT3D_SPEC,
    HSTL,
    OUMVLP_SPEC,
    PAPER_TREES,
    PRESET_SPECS,
    SMALL_SPEC,
    GuessedSplitsWarning,
    HSTLSpec,
    StageSpec,
    export_opengait,
    hstl_weights,
    load_opengait_checkpoint,
    opengait_model_cfg,
    opengait_state_dict,
    read_checkpoint_file,
    resolve_tree,
    spec_from_model_cfg,
    spec_from_state_dict,
    unpickling_refusal,
)

__all__ = [
    "AMP_CHOICES",
    "ARME",
    "ASTP",
    "CASIA_B_SPEC",
    "FTA",
    "GAIT3D_SPEC",
    "GAITGS_128_SPEC",
    "GAITGS_SMALL_SPEC",
    "GAITGS_SPEC",
    "HSTL",
    "OUMVLP_SPEC",
    "PAPER_TREES",
    "PRESET_SPECS",
    "SMALL_SPEC",
    "ARMEStage",
    "BasicConv2d",
    "BasicConv3d",
    "FTABlock",
    "FeatureMapModel",
    "FeatureMapReader",
    "GaitGS",
    "GaitGSSpec",
    "GaitModel",
    "GeMHPP",
    "GuessedSplitsWarning",
    "HSTLSpec",
    "ImportedWeights",
    "ModelFamily",
    "ModelOutput",
    "ModelSpec",
    "Rebuild",
    "SeparateFCs",
    "SpecError",
    "SpecFields",
    "StageSpec",
    "Stem",
    "TreeCut",
    "autocast",
    "build_model",
    "check_amp",
    "create_model",
    "cut_model",
    "export_opengait",
    "family_of",
    "feature_map_reader",
    "get_family",
    "get_model_factory",
    "hstl_weights",
    "list_families",
    "list_models",
    "load_opengait_checkpoint",
    "model_family",
    "native_bf16",
    "opengait_model_cfg",
    "opengait_state_dict",
    "read_checkpoint_file",
    "register_family",
    "register_model",
    "resolve_amp",
    "resolve_device",
    "resolve_tree",
    "spec_from_model_cfg",
    "spec_from_state_dict",
    "unpickling_refusal",
]


def _import_family_modules() -> None:
    """Import every module of this package, so that a family module added to it registers its family and presets."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_import_family_modules()
