"""The GaitGS family: its spec, the two-granularity network and its layers, and the registered presets.

Importing the package registers the family (``gaitgs``) and its models (``gaitgs``, ``gaitgs-128``,
``gaitgs-small``); ``workbench.models`` re-exports the public names.
"""

from __future__ import annotations

from workbench.models.gaitgs._model import (
    GAITGS_128_SPEC,
    GAITGS_FAMILY,
    GAITGS_SMALL_SPEC,
    GAITGS_SPEC,
    GaitGS,
    GaitGSSpec,
)

__all__ = ["GAITGS_128_SPEC", "GAITGS_FAMILY", "GAITGS_SMALL_SPEC", "GAITGS_SPEC", "GaitGS", "GaitGSSpec"]
