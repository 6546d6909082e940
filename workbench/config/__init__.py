"""Frozen dataclass configs: defaults, then a TOML/YAML file, then ``key=value`` overrides.

Each component keeps its own dataclass next to its code; this package only knows how to build,
validate, flatten and dump them. Unknown keys are errors.
"""

from __future__ import annotations

from workbench.config._loader import (
    ConfigError,
    apply_overrides,
    dump_config,
    flatten,
    from_dict,
    load_config,
    parse_override,
    read_mapping,
    to_dict,
)

__all__ = [
    "ConfigError",
    "apply_overrides",
    "dump_config",
    "flatten",
    "from_dict",
    "load_config",
    "parse_override",
    "read_mapping",
    "to_dict",
]
