"""MLflow-safe keys and values: sanitised names, stringified split lists, flattened params."""

from __future__ import annotations

import enum
from pathlib import Path

import numpy as np
import pytest

from workbench.tracking import format_value, sanitize_key
from workbench.tracking._values import MAX_KEY_LENGTH, flat_params, metric_value


def test_split_lists_are_stringified_like_python_lists() -> None:
    assert format_value([8, 32, 16, 8]) == "[8, 32, 16, 8]"
    assert format_value(((64,), (40, 24))) == "[[64], [40, 24]]"
    assert format_value(np.array([4, 24, 4])) == "[4, 24, 4]"
    assert format_value(Path("a/b.json")) == "a/b.json"
    assert format_value(0.1) == "0.1" and format_value(True) == "True" and format_value(None) == "None"

    class Mode(enum.Enum):
        FAST = "fast"

    assert format_value(Mode.FAST) == "fast"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("loss[tri]", "loss_tri_"),
        ("a//b", "a/b"),
        ("/lead/trail/", "lead/trail"),
        ("../up", "__/up"),
        ("stage1.split", "stage1.split"),
        ("rank-1: NM", "rank-1: NM"),
        ("émoji✓", "émoji_"),
    ],
)
def test_keys_are_sanitised_to_what_mlflow_accepts(key: str, expected: str) -> None:
    from mlflow.utils.validation import _validate_param_name

    assert sanitize_key(key) == expected
    _validate_param_name(sanitize_key(key))


def test_overlong_and_empty_keys() -> None:
    assert len(sanitize_key("k" * 400)) == MAX_KEY_LENGTH
    with pytest.raises(ValueError, match="no usable characters"):
        sanitize_key("//")


def test_flat_params_flattens_nested_mappings_and_dataclasses() -> None:
    from dataclasses import dataclass

    @dataclass
    class Stage:
        channels: int
        split: tuple[int, ...]

    flat = flat_params({"model": {"stage3": Stage(128, (8, 32, 16, 8))}, "lr": 1e-4, "odd key!": 1})
    assert flat == {
        "model.stage3.channels": "128",
        "model.stage3.split": "[8, 32, 16, 8]",
        "lr": "0.0001",
        "odd key_": "1",
    }


def test_metric_values_must_be_numbers() -> None:
    assert metric_value("x", np.float32(0.5)) == 0.5
    assert metric_value("x", 3) == 3.0
    with pytest.raises(TypeError, match=r"metric 'x'.*str"):
        metric_value("x", "0.5")
    with pytest.raises(TypeError, match="metric 'flag'"):
        metric_value("flag", True)
