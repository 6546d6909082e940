"""``EmbeddingSet``: inference embeddings ``[N, c, p]`` with the id, type and view of each sequence."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _strings(values: Sequence[str] | np.ndarray, name: str, count: int) -> np.ndarray:
    array = np.asarray([str(v) for v in values], dtype=str) if len(values) else np.zeros(0, dtype=str)
    if len(array) != count:
        raise ValueError(f"{name}: {len(array)} entries for {count} embeddings; give one per sequence")
    return array


class EmbeddingSet:
    """Embeddings ``float [N, c, p]`` with per-sequence ``ids``, ``types``, ``views`` (string arrays ``[N]``).

    ``probe`` (``bool [N]`` or ``None``) marks Gait3D's ``PROBE_SET`` sequences; other protocols pick
    probes and gallery by type.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        ids: Sequence[str] | np.ndarray,
        types: Sequence[str] | np.ndarray,
        views: Sequence[str] | np.ndarray,
        probe: Sequence[bool] | np.ndarray | None = None,
    ) -> None:
        if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 3:
            shape = list(getattr(embeddings, "shape", []))
            raise ValueError(f"embeddings: expected a numpy array [N, channels, parts], got shape {shape}")
        if not np.issubdtype(embeddings.dtype, np.floating):
            raise ValueError(f"embeddings: expected floating-point values, got dtype {embeddings.dtype}")
        count = embeddings.shape[0]
        self.embeddings = embeddings
        self.ids = _strings(ids, "ids", count)
        self.types = _strings(types, "types", count)
        self.views = _strings(views, "views", count)
        self.probe: np.ndarray | None = None
        if probe is not None:
            flags = np.asarray(probe, dtype=bool)
            if flags.shape != (count,):
                raise ValueError(f"probe: expected a boolean flag per sequence [{count}], got {list(flags.shape)}")
            self.probe = flags

    def __repr__(self) -> str:
        shape = "x".join(str(v) for v in self.embeddings.shape)
        flags = "" if self.probe is None else f", {int(self.probe.sum())} probe-flagged"
        return f"EmbeddingSet({shape} {self.embeddings.dtype}{flags})"

    def __len__(self) -> int:
        return int(self.embeddings.shape[0])

    @property
    def keys(self) -> list[str]:
        """``id-type-view`` of each sequence (Gait3D's ``PROBE_SET`` spelling)."""
        return [f"{i}-{t}-{v}" for i, t, v in zip(self.ids, self.types, self.views, strict=True)]

    def select(self, rows: np.ndarray) -> EmbeddingSet:
        """The sequences picked by a boolean mask or index array ``rows``."""
        return EmbeddingSet(
            self.embeddings[rows],
            self.ids[rows],
            self.types[rows],
            self.views[rows],
            None if self.probe is None else self.probe[rows],
        )

    def check_finite(self) -> None:
        """Raise naming the first sequence whose embedding holds NaN or infinity."""
        bad = ~np.isfinite(self.embeddings).reshape(len(self), -1).all(axis=1)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"embeddings: {int(bad.sum())} sequences hold NaN or infinite values (first: "
                f"{self.keys[first]}); the model diverged or its input was corrupt"
            )

    def save(self, path: str | Path) -> Path:
        """Write the set to a ``.npz`` file (readable by ``EmbeddingSet.load``)."""
        path = Path(path)
        arrays = {"embeddings": self.embeddings, "ids": self.ids, "types": self.types, "views": self.views}
        if self.probe is not None:
            arrays["probe"] = self.probe
        np.savez(path, **arrays)  # type: ignore[arg-type]
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingSet:
        """Read a set written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: embeddings file not found")
        with np.load(path, allow_pickle=False) as data:
            missing = {"embeddings", "ids", "types", "views"} - set(data.files)
            if missing:
                raise ValueError(f"{path}: missing arrays {sorted(missing)}; write it with EmbeddingSet.save")
            probe = data["probe"] if "probe" in data.files else None
            return cls(data["embeddings"], data["ids"], data["types"], data["views"], probe)
