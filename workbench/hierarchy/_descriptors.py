"""Row descriptors: how each silhouette row (or activation row) moves over time, streamed over a dataset."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import ClassVar, TypeVar

import numpy as np

from workbench._plugins import load_entry_points
from workbench.hierarchy._stats import DescriptorStats

SIGNALS = ("occupancy", "left", "right", "centroid", "change")


@lru_cache(maxsize=32)
def _row_map(src: int, dst: int) -> np.ndarray:
    """Area-overlap weights ``[dst, src]`` mapping rows of height ``src`` onto ``dst`` rows."""
    edges_src = np.arange(src + 1) / src
    edges_dst = np.arange(dst + 1) / dst
    lo = np.maximum(edges_dst[:-1, None], edges_src[None, :-1])
    hi = np.minimum(edges_dst[1:, None], edges_src[None, 1:])
    overlap = np.clip(hi - lo, 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def row_coherence(signals: np.ndarray, n_rows: int) -> np.ndarray:
    """Per row, the correlation of each signal with that signal in every row: ``[s, t, h] -> [n_rows, s * n_rows]``.

    Rows are area-resampled to ``n_rows`` first. A row whose signal never changes correlates 0 with
    everything (its correlation is undefined, and 0 reads as "unrelated").
    """
    if signals.shape[2] != n_rows:
        signals = np.einsum("rh,sth->str", _row_map(signals.shape[2], n_rows), signals)
    centred = signals - signals.mean(axis=1, keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=1, keepdims=True))
    unit = np.where(norm > 1e-9, centred / np.where(norm > 1e-9, norm, 1.0), 0.0)
    corr = np.einsum("str,stq->srq", unit, unit)  # [s, n_rows, n_rows]
    return corr.transpose(1, 0, 2).reshape(n_rows, -1)


def map_rows(features: np.ndarray, n_rows: int) -> np.ndarray:
    """Resample per-row ``features: [h, f]`` to ``[n_rows, f]`` by area averaging (identity when equal)."""
    if features.shape[0] == n_rows:
        return features
    return _row_map(features.shape[0], n_rows) @ features


class RowDescriptor(ABC):
    """Turns one sequence into per-row features ``[n_rows, n_features]`` and streams a dataset.

    Subclasses set ``name`` (the registry key), ``kind`` (``silhouette`` or ``activation``) and
    implement ``row_features`` at the input's own height; rows are mapped to ``n_rows`` here.
    ``new_stats`` makes the per-subject statistics ``accumulate`` streams into; a descriptor whose
    row matrix compares subjects (``learns_from_subjects``) returns one whose ``matrix`` does so, and
    discovery then reads only training subjects (``discover_tree``).

    Args:
        n_rows: descriptor rows; ``None`` takes the height of the first input.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    #: Whether the row matrix is learnt from the subject labels (then only training subjects may be read).
    learns_from_subjects: ClassVar[bool] = False
    #: Whether clustering should z-score each column first; ``False`` when the columns already share one
    #: scale that means something (``row-identity``'s variance shares), which z-scoring would erase.
    standardize: ClassVar[bool] = True

    def __init__(self, n_rows: int | None = None) -> None:
        if n_rows is not None and int(n_rows) < 1:
            raise ValueError(f"n_rows must be >= 1, got {n_rows}")
        self.n_rows = None if n_rows is None else int(n_rows)

    def check_subjects(self, subjects: Sequence[str]) -> None:
        """Raise, before any sequence is read, when the subject labels ``subjects`` (one per sequence)
        cannot feed this descriptor; a descriptor that ignores labels accepts any."""
        del subjects

    @abstractmethod
    def feature_names(self) -> list[str]:
        """One name per feature column."""

    def feature_groups(self) -> list[str] | None:
        """Block label per feature column, or ``None`` when every column weighs alike.

        A descriptor that concatenates blocks of different sizes labels them, so clustering can give
        each block the same total weight (``HierarchyDiscovery(feature_groups=...)``).
        """
        return None

    @abstractmethod
    def row_features(self, x: np.ndarray) -> np.ndarray:
        """Features ``[h, n_features]`` of one validated input at its own height ``h``."""

    @abstractmethod
    def validate(self, x: np.ndarray) -> np.ndarray:
        """Check one input's shape and type; return it as float in the range the features expect."""

    @abstractmethod
    def height(self, x: np.ndarray) -> int:
        """Row count of one input."""

    def describe(self, x: np.ndarray) -> np.ndarray:
        """Features ``[n_rows, n_features]`` of one sequence."""
        data = self.validate(np.asarray(x))
        if self.n_rows is None:
            self.n_rows = self.height(data)
        return map_rows(self.row_features(data), self.n_rows)

    def accumulate(
        self,
        sequences: Iterable[np.ndarray],
        subjects: Iterable[str] | None = None,
        stats: DescriptorStats | None = None,
        min_frames: int = 2,
    ) -> DescriptorStats:
        """Stream ``sequences`` into per-subject sums (all under ``"all"`` when ``subjects`` is None).

        Sequences with fewer than ``min_frames`` frames are skipped and counted in ``n_skipped``.
        """
        subject_iter = iter(subjects) if subjects is not None else None
        for x in sequences:
            subject = next(subject_iter, None) if subject_iter is not None else "all"
            if subject is None:
                raise ValueError("subjects ran out before sequences; give one subject per sequence")
            if self.frames(np.asarray(x)) < min_frames:
                if stats is not None:
                    stats.n_skipped += 1
                continue
            features = self.describe(x)
            if stats is None:
                stats = self.new_stats()
            stats.add(features, str(subject))
        if stats is None:
            raise ValueError(f"no sequence with at least {min_frames} frames to describe; the input was empty")
        return stats

    def new_stats(self) -> DescriptorStats:
        """Empty per-subject statistics for this descriptor's sequences (``n_rows`` must be known)."""
        if self.n_rows is None:
            raise ValueError("descriptor stats need n_rows; set it or describe a sequence first")
        return DescriptorStats(self.n_rows, self.feature_names(), self.name, self.feature_groups())

    def frames(self, x: np.ndarray) -> int:
        """Frames of one input (its time axis length)."""
        return int(x.shape[0]) if x.ndim >= 1 else 0

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n_rows={self.n_rows})"


_D = TypeVar("_D", bound=type[RowDescriptor])
_REGISTRY: dict[str, type[RowDescriptor]] = {}
#: Entry-point group of other distributions' descriptors (``workbench._plugins``).
PLUGIN_GROUP = "workbench.descriptors"


def register_descriptor(cls: _D) -> _D:
    """Class decorator adding a descriptor to the registry under ``cls.name``."""
    if cls.name in _REGISTRY:
        raise ValueError(f"descriptor {cls.name!r} is already registered by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls


def list_descriptors(kind: str | None = None) -> list[str]:
    """Registered descriptor names, sorted; ``kind`` keeps those of one input kind (``"silhouette"``)."""
    load_entry_points(PLUGIN_GROUP)
    return sorted(name for name, cls in _REGISTRY.items() if kind is None or cls.kind == kind)


def descriptor_summaries() -> dict[str, str]:
    """Name -> one-line description of every registered descriptor (for CLI help)."""
    return {name: (_REGISTRY[name].__doc__ or "").strip().splitlines()[0] for name in list_descriptors()}


def create_descriptor(name: str, **params: object) -> RowDescriptor:
    """Instantiate the descriptor registered as ``name``."""
    load_entry_points(PLUGIN_GROUP)
    if name not in _REGISTRY:
        raise ValueError(f"unknown descriptor {name!r}; available: {', '.join(list_descriptors())}")
    return _REGISTRY[name](**params)  # type: ignore[arg-type]


class _SilhouetteDescriptor(RowDescriptor):
    """Shared per-row temporal signals of a silhouette sequence ``[frames, h, w]``."""

    kind: ClassVar[str] = "silhouette"

    def validate(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 3:
            raise ValueError(f"expected a silhouette sequence [frames, h, w], got shape {list(x.shape)}")
        if x.dtype == np.uint8:
            return x.astype(np.float32) / 255.0
        if np.issubdtype(x.dtype, np.floating):
            if x.size and (float(x.min()) < 0.0 or float(x.max()) > 1.0 + 1e-6):
                raise ValueError("float silhouettes must lie in [0, 1]; divide uint8 frames by 255")
            return x.astype(np.float32)
        raise ValueError(f"expected uint8 (0..255) or float (0..1) silhouettes, got dtype {x.dtype}")

    def height(self, x: np.ndarray) -> int:
        return int(x.shape[1])

    @staticmethod
    def signals(x: np.ndarray) -> np.ndarray:
        """Per-row signals ``[5, frames, h]`` (``SIGNALS``): occupancy, edges, centroid, change.

        Edges and centroid are fractions of the width, measured from the image centre (the
        pretreatment centres the body), 0 where a row is empty.
        """
        frames, _h, w = x.shape
        occupancy = x.mean(axis=2)
        filled = x >= 0.5
        present = filled.any(axis=2)
        cols = np.arange(w, dtype=np.float32)
        left = np.where(present, filled.argmax(axis=2), w / 2)
        right = np.where(present, w - 1 - filled[:, :, ::-1].argmax(axis=2), w / 2)
        mass = x.sum(axis=2)
        centroid = np.where(mass > 0, (x * cols).sum(axis=2) / np.maximum(mass, 1e-6), w / 2)
        change = np.abs(np.diff(x, axis=0)).mean(axis=2)
        # Pad the frame differences so every signal has one value per frame.
        change = np.concatenate([change, change[-1:]], axis=0) if frames > 1 else np.zeros_like(occupancy)
        centre = (w - 1) / 2
        return np.stack(
            [occupancy, (left - centre) / w, (right - centre) / w, (centroid - centre) / w, change]
        ).astype(np.float64)


@register_descriptor
class RowCoherence(_SilhouetteDescriptor):
    """row-coherence: per row, how its temporal signals correlate with those of every other row.

    Rows of one rigid body part swing together, so their correlation profiles match; the profile
    ignores the walk's phase and the motion's size. Signals as in ``row-spectrum`` (occupancy,
    edges, centroid, change), rows first resampled to ``n_rows``. A row whose signal never changes
    (e.g. always empty) correlates 0 with everything. Features: 5 x n_rows.
    """

    name: ClassVar[str] = "row-coherence"

    def feature_names(self) -> list[str]:
        if self.n_rows is None:
            raise ValueError("feature names are known once n_rows is set (or after the first sequence)")
        return [f"{s}:row{r}" for s in SIGNALS for r in range(self.n_rows)]

    def row_features(self, x: np.ndarray) -> np.ndarray:
        assert self.n_rows is not None
        return row_coherence(self.signals(x), self.n_rows)


@register_descriptor
class RowSpectrum(_SilhouetteDescriptor):
    """row-spectrum: per row, the mean and band amplitudes of the magnitude spectrum of each signal.

    Signals: occupancy, left and right edge, centroid, frame-to-frame change. Magnitudes ignore the
    walk's phase; band energies integrate the spectrum over fixed frequency bands (cycles per frame),
    so sequences of any length land on the same ``n_bands`` columns. Features: 5 x (1 + n_bands).

    Args:
        n_rows: descriptor rows (``None``: the data height).
        n_bands: frequency bands; ``n_bands - 1`` equal bands up to ``max_freq``, one band above it.
        max_freq: upper edge of the equal bands (gait fundamentals lie near 0.03-0.05 cycles/frame).
    """

    name: ClassVar[str] = "row-spectrum"

    def __init__(self, n_rows: int | None = None, n_bands: int = 6, max_freq: float = 0.25) -> None:
        super().__init__(n_rows)
        if n_bands < 2:
            raise ValueError(f"n_bands must be >= 2, got {n_bands}")
        if not 0.0 < max_freq < 0.5:
            raise ValueError(f"max_freq must lie in (0, 0.5) cycles per frame, got {max_freq}")
        self.n_bands = int(n_bands)
        self.max_freq = float(max_freq)

    def feature_names(self) -> list[str]:
        return [f"{s}:{part}" for s in SIGNALS for part in ["mean", *(f"band{b}" for b in range(self.n_bands))]]

    def band_edges(self) -> np.ndarray:
        """Band edges in cycles per frame ``[n_bands + 1]``."""
        return np.concatenate([np.linspace(0.0, self.max_freq, self.n_bands), [0.5]])

    def row_features(self, x: np.ndarray) -> np.ndarray:
        sig = self.signals(x)  # [5, t, h]
        t = sig.shape[1]
        mean = sig.mean(axis=1)
        spectrum = np.fft.rfft(sig - mean[:, None, :], axis=1)
        # One-sided power per DFT bin, normalised so the bins sum to the signal's variance (Parseval).
        power = np.abs(spectrum) ** 2 / t**2
        power[:, 1 : (t + 1) // 2] *= 2.0
        freqs = np.arange(power.shape[1]) / t
        # Spread each bin's power evenly over [f - 1/2t, f + 1/2t] and integrate that density per
        # band, so band energies do not depend on the sequence length.
        lo = np.clip(freqs - 0.5 / t, 0.0, 0.5)
        hi = np.clip(freqs + 0.5 / t, 0.0, 0.5)
        edges = self.band_edges()
        share = np.clip(np.minimum(hi[None, :], edges[1:, None]) - np.maximum(lo[None, :], edges[:-1, None]), 0, None)
        share /= np.maximum(hi - lo, 1e-12)[None, :]
        bands = np.sqrt(np.einsum("bk,skh->sbh", share, power))  # [5, n_bands, h]
        feats = np.concatenate([mean[:, None, :], bands], axis=1)  # [5, 1 + n_bands, h]
        return feats.reshape(-1, feats.shape[-1]).T

    def __repr__(self) -> str:
        return f"RowSpectrum(n_rows={self.n_rows}, n_bands={self.n_bands}, max_freq={self.max_freq})"


@register_descriptor
class RowStats(_SilhouetteDescriptor):
    """row-stats: per row, mean, spread, 10-90 % range and mean speed of each temporal signal.

    The same five signals as ``row-spectrum``, summarised by order-free statistics (invariant to
    phase and cheap). Features: 5 x 4.
    """

    name: ClassVar[str] = "row-stats"

    def feature_names(self) -> list[str]:
        return [f"{s}:{stat}" for s in SIGNALS for stat in ("mean", "std", "range", "speed")]

    def row_features(self, x: np.ndarray) -> np.ndarray:
        sig = self.signals(x)  # [5, t, h]
        p10, p90 = np.percentile(sig, [10, 90], axis=1)
        speed = np.abs(np.diff(sig, axis=1)).mean(axis=1) if sig.shape[1] > 1 else np.zeros_like(p10)
        feats = np.stack([sig.mean(axis=1), sig.std(axis=1), p90 - p10, speed], axis=1)  # [5, 4, h]
        return feats.reshape(-1, feats.shape[-1]).T


@register_descriptor
class ActivationStats(RowDescriptor):
    """activation-stats: per row and channel, mean, temporal spread and speed of a stage's activations.

    Input: one sequence's activations ``[c, s, h, w]`` (float), e.g. from a model adapter. Each
    channel is averaged over the width, then summarised over time. ``h`` may differ from
    ``n_rows``: rows are area-resampled. Features: 3 x c.
    """

    name: ClassVar[str] = "activation-stats"
    kind: ClassVar[str] = "activation"

    def __init__(self, n_rows: int | None = 64) -> None:
        super().__init__(n_rows)
        self.channels: int | None = None

    def frames(self, x: np.ndarray) -> int:
        return int(x.shape[1]) if x.ndim == 4 else 0

    def height(self, x: np.ndarray) -> int:
        return int(x.shape[2])

    def validate(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 4:
            raise ValueError(f"expected activations [c, s, h, w] of one sequence, got shape {list(x.shape)}")
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"expected float activations, got dtype {x.dtype}")
        if self.channels is None:
            self.channels = int(x.shape[0])
        elif x.shape[0] != self.channels:
            raise ValueError(
                f"activations have {x.shape[0]} channels, earlier ones {self.channels}; use one stage throughout"
            )
        if not np.all(np.isfinite(x)):
            raise ValueError("activations contain NaN or inf")
        return x.astype(np.float64)

    def feature_names(self) -> list[str]:
        if self.channels is None:
            raise ValueError("feature names are known after the first activation array is described")
        return [f"c{c}:{stat}" for stat in ("mean", "std", "speed") for c in range(self.channels)]

    def row_features(self, x: np.ndarray) -> np.ndarray:
        rows = x.mean(axis=3)  # [c, s, h]
        speed = np.abs(np.diff(rows, axis=1)).mean(axis=1) if rows.shape[1] > 1 else np.zeros_like(rows[:, 0])
        feats = np.concatenate([rows.mean(axis=1), rows.std(axis=1), speed], axis=0)  # [3c, h]
        return feats.T


__all__ = [
    "SIGNALS",
    "ActivationStats",
    "RowCoherence",
    "RowDescriptor",
    "RowSpectrum",
    "RowStats",
    "create_descriptor",
    "descriptor_summaries",
    "list_descriptors",
    "map_rows",
    "register_descriptor",
    "row_coherence",
]
