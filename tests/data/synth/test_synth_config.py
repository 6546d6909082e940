"""SynthConfig: presets, validation messages, loading through the config package."""

from __future__ import annotations

from pathlib import Path

import pytest

from workbench.config import ConfigError, load_config
from workbench.data.synth import (
    CASIA_B_TYPES,
    CASIA_B_VIEWS,
    SynthConfig,
    condition_of,
    subject_name,
    view_name,
)


def test_default_mirrors_casia_b() -> None:
    config = SynthConfig()
    assert config.views == (0, 18, 36, 54, 72, 90, 108, 126, 144, 162, 180) == CASIA_B_VIEWS
    assert config.types == CASIA_B_TYPES
    assert config.types[:6] == tuple(f"nm-0{i}" for i in range(1, 7))
    assert config.size == 64
    assert config.frames == (60, 90)
    assert config.train_count == 30
    assert config.subject_ids[:2] == ["001", "002"]
    assert SynthConfig.default(subjects=7) == SynthConfig(subjects=7)


def test_tiny_is_small_and_takes_overrides() -> None:
    tiny = SynthConfig.tiny()
    assert tiny.subjects * len(tiny.types) * len(tiny.views) <= 64
    assert tiny.frames[1] <= 20
    assert {condition_of(t) for t in tiny.types} == {"nm", "bg", "cl"}
    assert SynthConfig.tiny(seed=3, size=128).size == 128


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"subjects": 0}, "subjects: expected a whole number >= 1"),
        ({"types": ("nm-01", "walk-01")}, "unknown sequence type 'walk-01'"),
        ({"types": ("nm-1",)}, "expected nm-NN"),
        ({"types": ("nm-01", "nm-01")}, "lists a type twice"),
        ({"views": (0, 190)}, "190 is not a whole number of degrees in 0..180"),
        ({"views": ()}, "at least one view"),
        ({"frames": (10, 5)}, "1 <= min <= max"),
        ({"frames": (0, 5)}, "1 <= min <= max"),
        ({"size": 96}, "use 64"),
        ({"seed": -1}, "seed"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"noise": -0.5}, "noise"),
    ],
)
def test_bad_values_name_the_field_and_the_fix(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthConfig(**changes)  # type: ignore[arg-type]


def test_lists_become_tuples() -> None:
    config = SynthConfig(views=[90, 0], types=["nm-01"], frames=[5, 6])  # type: ignore[arg-type]
    assert config.views == (90, 0) and config.types == ("nm-01",) and config.frames == (5, 6)
    hash(config)


def test_train_split_keeps_a_test_subject() -> None:
    assert SynthConfig(subjects=2, train_fraction=1.0).train_count == 1
    assert SynthConfig(subjects=1).train_count == 1
    assert SynthConfig(subjects=10, train_fraction=0.6).train_count == 6


def test_names() -> None:
    assert view_name(0) == "000" and view_name(90) == "090"
    assert subject_name(7, 50) == "007" and subject_name(7, 1200) == "0007"
    assert condition_of("cl-02") == "cl"


def test_loads_from_toml_with_unknown_keys_rejected(tmp_path: Path) -> None:
    good = tmp_path / "synth.toml"
    good.write_text("subjects = 5\nviews = [0, 90]\ntypes = ['nm-01', 'bg-01']\nframes = [10, 12]\n")
    config = load_config(SynthConfig, good)
    assert config == SynthConfig(subjects=5, views=(0, 90), types=("nm-01", "bg-01"), frames=(10, 12))
    bad = tmp_path / "bad.toml"
    bad.write_text("subject = 5\n")
    with pytest.raises(ConfigError, match="subject"):
        load_config(SynthConfig, bad)
