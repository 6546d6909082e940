"""Keys and values the way MLflow stores them: sanitised names, stringified params, float metrics."""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

# Limits of the MLflow 3 stores (mlflow.utils.validation); values above them are refused or cut.
MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

_BAD_CHARS = re.compile(r"[^\w./\- :]")
_TRUNCATED = "...[truncated]"


def sanitize_key(key: Any) -> str:
    """A param/metric/tag name MLflow accepts: bad characters become ``_``, no empty path segments.

    Example: ``sanitize_key("loss[tri]")`` is ``"loss_tri_"``.
    """
    text = _BAD_CHARS.sub("_", str(key).strip())
    # MLflow refuses names that a path normalisation would change ("a//b", "./a", "a/", "..").
    parts = [p if p not in (".", "..") else p.replace(".", "_") for p in text.split("/") if p]
    text = "/".join(parts)
    if not text:
        raise ValueError(f"cannot use {key!r} as an MLflow key: it has no usable characters")
    return text[:MAX_KEY_LENGTH]


def format_value(value: Any) -> str:
    """The string MLflow shows for a param or tag: lists as ``[8, 32, 16, 8]``, paths as text."""
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if hasattr(value, "tolist") and not isinstance(value, (int, float)):
        value = value.tolist()
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut."""
    return text if len(text) <= limit else text[: limit - len(_TRUNCATED)] + _TRUNCATED


def flat_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten nested mappings and dataclasses to ``{"a.b": "value"}`` with sanitised keys."""
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            out.update(flat_params(value, prefix=f"{name}."))
        else:
            out[sanitize_key(name)] = format_value(value)
    return out


def metric_value(key: str, value: Any) -> float:
    """A metric as a float; tensors and numpy scalars are unwrapped, anything else is an error."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"metric {key!r}: expected a number, got {type(value).__name__} {value!r}")
    return float(value)


def numeric_items(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries of ``values`` that are numbers (NaN included), as floats; others are dropped."""
    out: dict[str, float] = {}
    for key, value in values.items():
        try:
            out[key] = metric_value(key, value)
        except (TypeError, ValueError):
            continue
    return out


def chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    """``items`` in consecutive slices of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]
