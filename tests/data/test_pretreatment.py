"""Pretreatment: OpenGait's frame alignment, in memory and over raw folders (PNG frames and GIFs)."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.data import (
    DataError,
    OpenGaitDataset,
    default_min_pixel_sum,
    pretreat_dataset,
    pretreat_frame,
    pretreat_frames,
    pretreat_gif,
    read_gif,
)


def _centre(frames: np.ndarray) -> np.ndarray:
    """Per frame, the first column where the cumulative column mass passes half the total."""
    mass = np.cumsum(frames.sum(axis=1, dtype=np.int64), axis=1)
    return np.argmax(mass > mass[:, -1:] / 2, axis=1)


def _body(height: int = 240, width: int = 320, top: int = 40, bottom: int = 200, left: int = 60, right: int = 100) -> np.ndarray:
    frame = np.zeros((height, width), np.uint8)
    frame[top:bottom, left:right] = 255
    return frame


def test_frame_is_cropped_scaled_to_full_height_and_centred() -> None:
    out = pretreat_frame(_body(), size=64)
    assert out is not None and out.shape == (64, 64) and out.dtype == np.uint8
    rows = out.any(axis=1)
    assert rows[0] and rows[-1]
    # 160 rows x 40 columns scale to 64 x 16: the body keeps its aspect, centred on column 32.
    columns = np.flatnonzero(out.max(axis=0) > 128)
    assert 14 <= len(columns) <= 18
    assert abs(_centre(out[None])[0] - 32) <= 1


def test_body_at_the_image_border_is_zero_padded() -> None:
    out = pretreat_frame(_body(left=0, right=30), size=64)
    assert out is not None and out.shape == (64, 64)
    assert abs(_centre(out[None])[0] - 32) <= 1
    assert not out[:, :8].any()


def test_nearly_empty_frames_are_skipped_with_a_scaled_threshold() -> None:
    assert default_min_pixel_sum(240, 320) == 10000
    assert default_min_pixel_sum(128, 128) == pytest.approx(10000 * 128 * 128 / 76800)
    speck = np.zeros((240, 320), np.uint8)
    speck[100:105, 100:105] = 255  # 6375 <= 10000
    assert pretreat_frame(speck) is None
    assert pretreat_frame(np.zeros((128, 128), np.uint8)) is None
    kept = pretreat_frames([_body(), speck, _body(left=200, right=240)], size=64)
    assert kept.shape == (2, 64, 64)
    assert pretreat_frames([speck]).shape == (0, 64, 64)


def test_binary_masks_are_treated_as_white_silhouettes() -> None:
    out = pretreat_frame(_body() > 0, size=64)
    assert out is not None and np.array_equal(out, pretreat_frame(_body(), size=64))


def test_size_128_and_bad_sizes() -> None:
    out = pretreat_frame(_body(), size=128)
    assert out is not None and out.shape == (128, 128)
    with pytest.raises(DataError, match="size=100"):
        pretreat_frame(_body(), size=100)


def test_real_gifs_align_to_64_with_every_frame_kept(real_fixtures: Path) -> None:
    for name in ("nm", "bg", "cl"):
        raw = read_gif(real_fixtures / f"{name}.gif")
        out = pretreat_gif(real_fixtures / f"{name}.gif", size=64)
        assert out.shape == (len(raw), 64, 64) and out.dtype == np.uint8
        assert out[:, 0].any(axis=1).all() and out[:, -1].any(axis=1).all(), "silhouette spans the height"
        assert np.abs(_centre(out) - 32).max() <= 1
        assert len(np.unique(out)) > 10, "grey edges survive the resize"


def _raw_tree(real: Path, root: Path) -> None:
    """Three raw layouts: <view>.gif, a GIF inside the view folder, and PNG frames."""
    (root / "001" / "nm-01").mkdir(parents=True)
    shutil.copy(real / "nm.gif", root / "001" / "nm-01" / "090.gif")
    (root / "001" / "bg-01" / "090").mkdir(parents=True)
    shutil.copy(real / "bg.gif", root / "001" / "bg-01" / "090" / "clip.gif")
    frames_dir = root / "002" / "cl-01" / "090"
    frames_dir.mkdir(parents=True)
    for index, frame in enumerate(read_gif(real / "cl.gif")):
        Image.fromarray(frame).save(frames_dir / f"{index:03d}.png")


def test_dataset_pretreatment_over_all_raw_layouts(real_fixtures: Path, tmp_path: Path) -> None:
    _raw_tree(real_fixtures, tmp_path / "raw")
    summary = pretreat_dataset(tmp_path / "raw", tmp_path / "out", size=64, workers=2, progress=False)
    assert (summary.sequences_found, summary.sequences_written) == (3, 3)
    assert summary.frames_written == 60 + 47 + 63 and not summary.failed
    data = OpenGaitDataset(tmp_path / "out")
    assert [(r.id, r.type, r.view) for r in data.records] == [
        ("001", "bg-01", "090"), ("001", "nm-01", "090"), ("002", "cl-01", "090")
    ]
    assert data.records[0].paths[0].name == "090.pkl"
    assert [len(data.load(i)) for i in range(3)] == [47, 60, 63]
    # PNG frames in file-name order give exactly what the GIF gives.
    assert np.array_equal(data.load(2), pretreat_gif(real_fixtures / "cl.gif"))
    assert "3 written of 3 found" in str(summary)


def test_bad_inputs_are_counted_and_never_abort_the_run(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    good = raw / "001" / "nm-01" / "000"
    good.mkdir(parents=True)
    for index in range(6):
        Image.fromarray(_body(left=50 + 5 * index, right=90 + 5 * index)).save(good / f"{index:02d}.png")
    (good / "03b.png").write_bytes(b"not a png")
    (raw / "001" / "nm-01" / "broken.gif").write_bytes(b"GIF89a garbage")
    empty = raw / "002" / "nm-01" / "000"
    empty.mkdir(parents=True)
    for index in range(3):
        Image.fromarray(np.zeros((240, 320), np.uint8)).save(empty / f"{index}.png")
    short = raw / "003" / "nm-01" / "000"
    short.mkdir(parents=True)
    for index in range(3):
        Image.fromarray(_body()).save(short / f"{index}.png")
    (raw / "004" / "nm-01" / "000").mkdir(parents=True)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = pretreat_dataset(raw, tmp_path / "out", workers=1, progress=False)
    messages = [str(w.message) for w in caught]
    assert any("1 sequence(s) had no usable frame and were dropped: 002/nm-01/000" in m for m in messages)
    assert any("1 sequence(s) have fewer than 5 frames: 003/nm-01/000" in m for m in messages)
    assert summary.sequences_written == 2
    assert summary.frames_written == 6 + 3 and summary.frames_skipped == 3
    assert len(summary.bad_frames) == 1 and "03b.png" in summary.bad_frames[0]
    assert any("broken.gif" in m for m in summary.failed)
    assert any("004/nm-01/000: no frame images or GIF" in m for m in summary.failed)
    assert not (tmp_path / "out" / "002").exists()
    assert len(OpenGaitDataset(tmp_path / "out").load(0)) == 6


def test_missing_or_empty_raw_root(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="raw data folder not found"):
        pretreat_dataset(tmp_path / "absent", tmp_path / "out", progress=False)
    (tmp_path / "raw").mkdir()
    with pytest.raises(DataError, match=r"raw: no raw sequences found; expected <id>/<type>/<view>/\*\.png"):
        pretreat_dataset(tmp_path / "raw", tmp_path / "out", progress=False)
