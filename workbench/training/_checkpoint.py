"""Checkpoints: atomic writes, keep-last-N rotation, RNG capture and safe (weights-only) loading."""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

#: Bumped when the checkpoint layout changes incompatibly.
CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^checkpoint-(\d{8})\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the run; the message names the file and the fix."""


def checkpoint_path(directory: str | Path, step: int) -> Path:
    """The file name of the checkpoint after ``step`` iterations."""
    return Path(directory) / f"checkpoint-{step:08d}.pt"


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete checkpoints in ``directory``, oldest first (temporary files are ignored)."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name)) and p.is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest checkpoint in ``directory``, or None."""
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _fsync_directory(directory: Path) -> None:
    # Without this the rename itself may not survive a power cut on some filesystems.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory handles
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def save_checkpoint(state: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``state`` to ``path`` atomically: temp file in the same directory, fsync, ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            torch.save(dict(state), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_directory(path.parent)
    return path


def prune_checkpoints(directory: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the newest ``keep_last`` checkpoints and stale temp files; return what was removed."""
    directory = Path(directory)
    removed = list_checkpoints(directory)[:-keep_last] if keep_last > 0 else []
    for path in removed:
        path.unlink(missing_ok=True)
    for tmp in directory.glob(".checkpoint-*.tmp"):
        # A temp file belongs to a save that was killed; a live save in this process never lingers here.
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The dict in a checkpoint file, read with ``weights_only=True`` (no arbitrary code), any layout.

    The one safe reader (``workbench.models.read_checkpoint_file``): OpenGait's ``Counter`` allowed,
    refusals without torch's advice to load the file anyway; errors as ``CheckpointError``.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; check the path or the run's output_dir")
    from workbench.models import read_checkpoint_file

    try:
        return read_checkpoint_file(path, map_location)
    except Exception as exc:
        raise CheckpointError(str(exc)) from exc


def check_checkpoint(state: Any, path: str | Path) -> dict[str, Any]:
    """``state`` if it has a workbench checkpoint's layout (a ``model`` entry, this format), else ``CheckpointError``."""
    if not isinstance(state, dict) or not isinstance(state.get("model"), Mapping):
        raise CheckpointError(f"{path}: not a workbench checkpoint (no 'model' entry)")
    version = state.get("format", CHECKPOINT_FORMAT)
    if version != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {version}, this workbench reads format {CHECKPOINT_FORMAT}"
        )
    return state


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True`` (no arbitrary code) and check its layout."""
    return check_checkpoint(read_checkpoint(path, map_location), path)


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy, torch and CUDA generator states as weights-only-loadable values."""
    np_state: Any = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``capture_rng_state`` captured (CUDA only when the device count matches)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([s.cpu() for s in cuda])
        else:
            logger.warning("checkpoint has %d CUDA RNG states, this machine %d GPUs: CUDA RNG not restored",
                           len(cuda), torch.cuda.device_count())
