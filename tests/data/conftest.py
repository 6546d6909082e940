"""Small OpenGait-layout datasets made of random blob silhouettes, written into tmp dirs."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from workbench.data import save_pickle

REAL_FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "real"


def blob_sequence(rng: np.random.Generator, frames: int, size: int = 64) -> np.ndarray:
    """``uint8 [frames, size, size]``: an upright ellipse drifting sideways, grey edges, random brightness."""
    yy, xx = np.mgrid[0:size, 0:size]
    out = np.zeros((frames, size, size), dtype=np.uint8)
    half_width = rng.uniform(0.12, 0.22) * size
    for t in range(frames):
        cx = size / 2 + 4 * np.sin(t / 3 + rng.uniform(0, 0.2))
        inside = ((xx - cx) / half_width) ** 2 + ((yy - size / 2) / (0.45 * size)) ** 2
        out[t] = np.clip((1.2 - inside) * 255 * 2, 0, 255).astype(np.uint8)
    return out


def write_opengait(
    root: Path,
    ids: Sequence[str] = ("001", "002", "003", "004", "005", "006"),
    types: Sequence[str] = ("nm-01", "nm-02", "bg-01"),
    views: Sequence[str] = ("000", "090"),
    frames: tuple[int, int] = (6, 16),
    modalities: Sequence[str] = ("sils",),
    train: Sequence[str] | None = None,
    seed: int = 0,
) -> Path:
    """Write ``root/<id>/<type>/<view>/<modality>.pkl`` plus ``root/partition.json``; return ``root``."""
    rng = np.random.default_rng(seed)
    for identity in ids:
        for seq_type in types:
            for view in views:
                folder = root / identity / seq_type / view
                folder.mkdir(parents=True, exist_ok=True)
                sequence = blob_sequence(rng, int(rng.integers(*frames)))
                for modality in modalities:
                    save_pickle(sequence, folder / f"{modality}.pkl")
    train = list(ids[: len(ids) * 2 // 3]) if train is None else list(train)
    test = [i for i in ids if i not in train]
    (root / "partition.json").write_text(json.dumps({"TRAIN_SET": train, "TEST_SET": test}))
    return root


@pytest.fixture
def make_opengait(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_opengait(name, **options)`` writes a dataset under tmp and returns its root."""

    def make(name: str = "og", **options: object) -> Path:
        return write_opengait(tmp_path / name, **options)  # type: ignore[arg-type]

    return make


@pytest.fixture
def opengait_root(make_opengait: Callable[..., Path]) -> Path:
    """6 ids x 3 types x 2 views = 36 sequences of 6..15 frames, ids 001-004 train, 005-006 test."""
    return make_opengait()


@pytest.fixture
def real_fixtures() -> Path:
    """The shared real GIFs (nm, bg, cl); skips when the shared folder is not next to the repo."""
    if not all((REAL_FIXTURES / f"{name}.gif").is_file() for name in ("nm", "bg", "cl")):
        pytest.skip(f"real silhouette fixtures not found at {REAL_FIXTURES} (they live in ../shared/)")
    return REAL_FIXTURES
