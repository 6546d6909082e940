"""OpenGait's pretreatment: raw silhouette frames to aligned ``uint8 [frames, size, size]`` sequences.

One frame: skip it when its pixel sum is at most the (image-size scaled) threshold; crop the
first..last non-empty rows; resize to height ``size`` keeping the aspect (Pillow bicubic); centre
on the first column where the cumulative column sum passes half the total; keep ``size // 2``
columns each side, zero-padding where the window leaves the image.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from workbench.data._errors import CorruptFileError, DataError

SIZES = (64, 128)
# OpenGait's threshold was chosen for CASIA-B's 320x240 frames; other sizes scale it by area.
_REFERENCE_PIXEL_SUM = 10000.0
_REFERENCE_AREA = 320 * 240
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


def default_min_pixel_sum(height: int, width: int) -> float:
    """OpenGait's skip threshold (10000 on a 320x240 frame) scaled to a ``height x width`` frame."""
    return _REFERENCE_PIXEL_SUM * height * width / _REFERENCE_AREA


def _check_size(size: int) -> None:
    if size not in SIZES:
        raise DataError(f"size={size}: pretreatment produces 64x64 or 128x128 frames; use 64 or 128")


def pretreat_frame(frame: np.ndarray, size: int = 64, min_pixel_sum: float | None = None) -> np.ndarray | None:
    """Align one silhouette ``frame: [h, w]`` to ``uint8 [size, size]``; ``None`` if it has no usable body."""
    _check_size(size)
    image = np.asarray(frame)
    if image.ndim != 2:
        raise DataError(f"expected a grey frame [h, w], got shape {list(image.shape)}; convert it to greyscale")
    if image.dtype == np.bool_:
        image = image.astype(np.uint8) * np.uint8(255)
    elif image.dtype != np.uint8:
        # Grey values are expected on OpenGait's 0..255 scale; anything outside is clipped.
        image = np.clip(image, 0, 255).astype(np.uint8)
    threshold = default_min_pixel_sum(*image.shape) if min_pixel_sum is None else min_pixel_sum
    if int(image.sum(dtype=np.int64)) <= threshold:
        return None
    rows = np.flatnonzero(image.any(axis=1))
    cropped = image[rows[0] : rows[-1] + 1]
    new_width = int(size * cropped.shape[1] / cropped.shape[0])
    if new_width == 0:
        return None
    resized = np.asarray(
        Image.fromarray(cropped).resize((new_width, size), Image.Resampling.BICUBIC), dtype=np.uint8
    )
    column_mass = np.cumsum(resized.sum(axis=0, dtype=np.int64))
    total = int(column_mass[-1])
    if total == 0:
        return None
    centre = int(np.argmax(column_mass > total / 2))
    if centre == 0:
        return None
    half = size // 2
    left = centre - half
    if left <= 0 or centre + half >= resized.shape[1]:
        # Pad by half the window on both sides so the window always fits, as OpenGait does.
        resized = np.pad(resized, ((0, 0), (half, half)))
        left += half
    return np.ascontiguousarray(resized[:, left : left + size])


def pretreat_frames(
    frames: Iterable[np.ndarray] | np.ndarray, size: int = 64, min_pixel_sum: float | None = None
) -> np.ndarray:
    """Align in-memory frames (each ``[h, w]``) to ``uint8 [kept, size, size]``, skipping empty frames."""
    _check_size(size)
    kept = [out for frame in frames if (out := pretreat_frame(frame, size, min_pixel_sum)) is not None]
    if not kept:
        return np.zeros((0, size, size), dtype=np.uint8)
    return np.stack(kept)


def _grey(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA"):
        image = image.convert("RGBA").convert("L")
    return np.asarray(image.convert("L"), dtype=np.uint8)


def read_gif(path: str | Path) -> np.ndarray:
    """Every frame of an animated GIF as grey ``uint8 [frames, h, w]``."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            frames = [_grey(frame) for frame in ImageSequence.Iterator(image)]
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(f"{path}: cannot read the GIF ({exc}); re-export it") from exc
    if not frames:
        raise CorruptFileError(f"{path}: the GIF has no frames")
    if len({f.shape for f in frames}) != 1:
        raise CorruptFileError(f"{path}: the GIF's frames differ in size; re-export it")
    return np.stack(frames)


def read_frame(path: str | Path) -> np.ndarray:
    """One image file as grey ``uint8 [h, w]``."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            return _grey(image)
    except FileNotFoundError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise CorruptFileError(f"{path}: cannot read the image ({exc})") from exc


def pretreat_gif(path: str | Path, size: int = 64, min_pixel_sum: float | None = None) -> np.ndarray:
    """Read an animated GIF and align its frames: ``uint8 [kept, size, size]``."""
    return pretreat_frames(read_gif(path), size, min_pixel_sum)
