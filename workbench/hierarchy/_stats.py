"""``DescriptorStats``: per-subject running sums of row descriptors, the unit of bootstrap resampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class DescriptorStats:
    """Running sums of per-sequence row descriptors, kept separately for each subject.

    Memory is ``O(subjects x rows x features)`` and does not grow with the number of sequences.
    Resampling subjects with replacement is a weighted sum of these accumulators, so a bootstrap
    never re-reads the data.

    Args:
        n_rows: rows of every descriptor.
        feature_names: one name per descriptor column.
        descriptor: name of the descriptor that produced the features (for provenance).
        feature_groups: block label per feature (``RowDescriptor.feature_groups()``), or ``None``.
        squares: also keep per-subject sums of squares (``squares``), for within-subject spreads.

    ``feature_names`` and ``feature_groups`` name the columns of ``matrix()``. Here that is the mean
    per-sequence descriptor, so one sequence has the same columns (``sequence_width``); a subclass
    whose ``matrix`` summarises the sequences differently (``IdentityStats``) sets its own.
    """

    def __init__(
        self,
        n_rows: int,
        feature_names: Sequence[str],
        descriptor: str = "",
        feature_groups: Sequence[str] | None = None,
        *,
        squares: bool = False,
    ) -> None:
        self.n_rows = int(n_rows)
        self.feature_names = list(feature_names)
        self.descriptor = descriptor
        if feature_groups is not None and len(feature_groups) != len(self.feature_names):
            raise ValueError(
                f"feature_groups has {len(feature_groups)} labels for {len(self.feature_names)} features; "
                "give one block label per feature"
            )
        self.feature_groups = None if feature_groups is None else list(feature_groups)
        self.subjects: list[str] = []
        self._index: dict[str, int] = {}
        self._sums: list[np.ndarray] = []
        self._squares: list[np.ndarray] | None = [] if squares else None
        self._counts: list[int] = []
        self.n_skipped = 0

    @property
    def n_features(self) -> int:
        """Descriptor columns."""
        return len(self.feature_names)

    @property
    def sequence_width(self) -> int:
        """Columns of one sequence's descriptor, the width ``add`` takes and ``sums`` keeps."""
        return self.n_features

    @property
    def n_subjects(self) -> int:
        """Subjects seen so far."""
        return len(self.subjects)

    @property
    def n_sequences(self) -> int:
        """Sequences accumulated so far."""
        return int(sum(self._counts))

    @property
    def counts(self) -> np.ndarray:
        """Sequences per subject ``[n_subjects]``."""
        return np.asarray(self._counts, dtype=np.int64)

    @property
    def sums(self) -> np.ndarray:
        """Per-subject feature sums ``[n_subjects, n_rows, sequence_width]``."""
        if not self._sums:
            return np.zeros((0, self.n_rows, self.sequence_width))
        return np.stack(self._sums)

    @property
    def squares(self) -> np.ndarray:
        """Per-subject sums of squared features ``[n_subjects, n_rows, sequence_width]`` (``squares=True``)."""
        if self._squares is None:
            raise ValueError("these descriptor stats keep no sums of squares; create them with squares=True")
        if not self._squares:
            return np.zeros((0, self.n_rows, self.sequence_width))
        return np.stack(self._squares)

    def add(self, features: np.ndarray, subject: str = "all") -> None:
        """Add one sequence's descriptor ``features: [n_rows, sequence_width]`` to ``subject``'s sums."""
        if features.shape != (self.n_rows, self.sequence_width):
            raise ValueError(
                f"descriptor of subject {subject!r} has shape {list(features.shape)}, expected "
                f"[{self.n_rows}, {self.sequence_width}]"
            )
        if not np.all(np.isfinite(features)):
            raise ValueError(f"descriptor of subject {subject!r} has non-finite values")
        index = self._index.get(subject)
        if index is None:
            index = self._index[subject] = len(self.subjects)
            self.subjects.append(subject)
            self._sums.append(np.zeros((self.n_rows, self.sequence_width)))
            if self._squares is not None:
                self._squares.append(np.zeros((self.n_rows, self.sequence_width)))
            self._counts.append(0)
        self._sums[index] += features
        if self._squares is not None:
            self._squares[index] += features**2
        self._counts[index] += 1

    def merge(self, other: DescriptorStats) -> DescriptorStats:
        """Fold ``other``'s sums into this one (e.g. from parallel workers); returns ``self``."""
        if (type(other) is not type(self) or other.feature_names != self.feature_names
                or other.n_rows != self.n_rows or other.feature_groups != self.feature_groups):
            raise ValueError("cannot merge descriptor stats with different rows, features or feature groups")
        if (other._squares is None) != (self._squares is None):
            raise ValueError("cannot merge descriptor stats where only one side keeps sums of squares")
        for i, subject in enumerate(other.subjects):
            index = self._index.get(subject)
            if index is None:
                index = self._index[subject] = len(self.subjects)
                self.subjects.append(subject)
                self._sums.append(np.zeros((self.n_rows, self.sequence_width)))
                if self._squares is not None:
                    self._squares.append(np.zeros((self.n_rows, self.sequence_width)))
                self._counts.append(0)
            self._sums[index] += other._sums[i]
            if self._squares is not None and other._squares is not None:
                self._squares[index] += other._squares[i]
            self._counts[index] += other._counts[i]
        self.n_skipped += other.n_skipped
        return self

    def matrix(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The row descriptor ``X: [n_rows, n_features]``: mean over sequences, subjects weighted.

        ``weights: [n_subjects]`` multiplies each subject's sequences (bootstrap multiplicities).
        """
        w = self.subject_weights(weights)
        total = float(np.dot(w, self.counts))
        if total <= 0:
            raise ValueError("the weights select no sequences")
        return np.tensordot(w, self.sums, axes=1) / total

    def subject_weights(self, weights: np.ndarray | None = None) -> np.ndarray:
        """``weights`` checked as one non-negative multiplicity per subject (all ones when ``None``)."""
        if self.n_sequences == 0:
            raise ValueError("no sequences were accumulated; check that the data folder holds sequences")
        w = np.ones(self.n_subjects) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (self.n_subjects,) or np.any(w < 0):
            raise ValueError(f"weights must be {self.n_subjects} non-negative numbers, got shape {list(w.shape)}")
        return w

    def bootstrap_weights(self, rng: np.random.Generator) -> np.ndarray:
        """Multiplicities ``[n_subjects]`` of one resample of subjects with replacement."""
        if self.n_subjects < 2:
            raise ValueError(
                f"bootstrap stability needs at least 2 subjects, the data has {self.n_subjects}; "
                "add subjects or skip stability (--bootstrap 0)"
            )
        picks = rng.integers(0, self.n_subjects, size=self.n_subjects)
        return np.bincount(picks, minlength=self.n_subjects).astype(np.float64)


__all__ = ["DescriptorStats"]
