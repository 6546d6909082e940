"""``row-identity``: rows described by how well, and by what, their signals tell training subjects apart.

The other silhouette descriptors say where the body moves as one piece; this one asks what
recognition asks: per row and per signal, how much of a sequence's value is the subject's own
(between-subject variance against within-subject variance, a one-way analysis of variance with
subjects as groups), and which other rows carry the same identity information. It reads the subject
labels, so discovery gives it training subjects only (``discover_tree``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from workbench.hierarchy._descriptors import _SilhouetteDescriptor, create_descriptor, register_descriptor
from workbench.hierarchy._stats import DescriptorStats

#: Block labels of the row matrix (``IdentityStats.feature_groups``).
IDENTITY_BLOCKS = ("separability", "shared-identity")
# Sums of squares below this fraction of the raw second moment are rounding, not spread: a row that
# never changes has no identity information, rather than a ratio of two rounding errors.
_RELATIVE_ZERO = 1e-9


def check_subject_design(label: str, subjects: Sequence[str], counts: Sequence[int]) -> None:
    """Raise unless 2+ ``subjects`` (with ``counts`` sequences each) and one of them has 2+ sequences."""
    if len(subjects) < 2:
        seen = ", ".join(repr(s) for s in subjects) or "none"
        raise ValueError(
            f"{label} compares subjects and needs at least 2 labelled training subjects; got "
            f"{len(subjects)} ({seen}); give one subject label per sequence, or name a descriptor that reads "
            "unlabelled sequences (row-articulation)"
        )
    if max(counts) < 2:
        raise ValueError(
            f"{label} needs a subject with 2 or more sequences to measure the within-subject spread; each "
            f"of the {len(subjects)} subjects has one (raise max_sequences, add sequences, or name a "
            "descriptor that reads unlabelled sequences: row-articulation)"
        )


@dataclass(frozen=True)
class SubjectAnova:
    """One-way analysis of variance per row and feature, with subjects as the groups.

    Arrays are ``[n_rows, n_features]`` unless noted; subjects with zero weight are left out.

    Attributes:
        means: subject means ``[n_subjects, n_rows, n_features]``.
        weights: each subject's multiplicity ``[n_subjects]`` (bootstrap draws; ones for the data).
        between: between-subject mean square.
        within: within-subject mean square.
        group_size: the effective sequences per subject (``n0``, for unequal counts).
        share: the between-subject share of one sequence's variance (intra-class correlation),
            ``max(0, (between - within) / group_size)`` over itself plus ``within``: 0 for a row
            with no identity information (constant rows included), 1 when subjects never vary.
    """

    means: np.ndarray
    weights: np.ndarray
    between: np.ndarray
    within: np.ndarray
    group_size: float
    share: np.ndarray

    @property
    def f_ratio(self) -> np.ndarray:
        """The F statistic ``between / within``; 0 where both are 0 (constant), inf where only ``within`` is."""
        safe = np.where(self.within > 0, self.within, 1.0)
        ratio = np.where(self.within > 0, self.between / safe, np.inf)
        return np.where(self.between > 0, ratio, 0.0)


def subject_anova(
    counts: np.ndarray, sums: np.ndarray, squares: np.ndarray, weights: np.ndarray | None = None
) -> SubjectAnova:
    """Between- and within-subject mean squares of per-sequence features from per-subject sums.

    Args:
        counts: sequences per subject ``[s]``.
        sums: per-subject feature sums ``[s, h, f]``.
        squares: per-subject sums of squared features ``[s, h, f]``.
        weights: subject multiplicities ``[s]`` (a bootstrap resample), ``None`` for all ones.
    """
    w = np.ones(len(counts)) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = w > 0
    w, n = w[keep], np.asarray(counts, dtype=np.float64)[keep]
    sums, squares = np.asarray(sums, dtype=np.float64)[keep], np.asarray(squares, dtype=np.float64)[keep]
    groups, total = float(w.sum()), float(np.dot(w, n))
    df_between, df_within = groups - 1.0, total - groups
    if df_between <= 0 or df_within <= 0:
        raise ValueError(
            f"between/within-subject variance needs 2 or more subjects and more sequences than subjects; "
            f"got {groups:g} subject draws and {total:g} sequences"
        )
    means = sums / n[:, None, None]
    grand = np.tensordot(w, sums, axes=1) / total
    ss_between = np.tensordot(w * n, (means - grand) ** 2, axes=1)
    ss_within = np.tensordot(w, squares - sums * means, axes=1)
    floor = _RELATIVE_ZERO * np.tensordot(w, squares, axes=1)
    ss_between = np.where(ss_between > floor, ss_between, 0.0)
    ss_within = np.where(ss_within > floor, ss_within, 0.0)
    between, within = ss_between / df_between, ss_within / df_within
    group_size = (total - float(np.dot(w, n**2)) / total) / df_between
    spread = np.clip(between - within, 0.0, None) / group_size
    whole = spread + within
    share = np.where(whole > 0, spread / np.where(whole > 0, whole, 1.0), 0.0)
    return SubjectAnova(means, w, between, within, group_size, share)


def identity_rows(anova: SubjectAnova) -> np.ndarray:
    """The ``row-identity`` row matrix ``[h, f + f * h]``: separability, then shared identity.

    ``separability`` is ``anova.share``. ``shared-identity`` holds, per feature ``f`` and other row
    ``q``, the correlation across subjects of the subject means of rows ``r`` and ``q`` times
    ``sqrt(share[r, f] * share[q, f])``: the correlation two rows' values get from identity alone.
    Rows driven by one body trait (a thigh's width) correlate across subjects; rows of another
    trait, or of none (share 0), do not.
    """
    w = anova.weights / anova.weights.sum()
    centred = anova.means - np.tensordot(w, anova.means, axes=1)
    cov = np.einsum("s,srf,sqf->frq", w, centred, centred)  # [f, h, h]
    var = np.einsum("frr->fr", cov)
    scale = np.einsum("s,srf->fr", w, anova.means**2)
    sd = np.sqrt(np.where(var > _RELATIVE_ZERO * scale, var, 0.0))
    outer = sd[:, :, None] * sd[:, None, :]
    corr = np.where(outer > 0, cov / np.where(outer > 0, outer, 1.0), 0.0)
    root = np.sqrt(anova.share.T)  # [f, h]
    shared = corr * root[:, :, None] * root[:, None, :]
    h = anova.share.shape[0]
    return np.concatenate([anova.share, shared.transpose(1, 0, 2).reshape(h, -1)], axis=1)


class IdentityStats(DescriptorStats):
    """Per-subject sums and sums of squares of per-sequence row signals; ``matrix`` compares subjects.

    ``signal_names`` name the per-sequence columns (what ``add`` takes); ``feature_names`` and
    ``feature_groups`` name the columns of ``matrix`` (``identity_rows``). Bootstrap weights
    resample subjects as for every descriptor.

    Args:
        n_rows: rows of every descriptor.
        signal_names: one name per per-sequence column.
        descriptor: the descriptor's name (provenance).
    """

    def __init__(self, n_rows: int, signal_names: Sequence[str], descriptor: str = "") -> None:
        self.signal_names = list(signal_names)
        rows = range(int(n_rows))
        names = [f"separability:{s}" for s in self.signal_names]
        names += [f"shared:{s}:row{q}" for s in self.signal_names for q in rows]
        n_signals = len(self.signal_names)
        groups = [IDENTITY_BLOCKS[0]] * n_signals + [IDENTITY_BLOCKS[1]] * (n_signals * int(n_rows))
        super().__init__(n_rows, names, descriptor, groups, squares=True)

    @property
    def sequence_width(self) -> int:
        return len(self.signal_names)

    def check_design(self) -> None:
        """Raise unless there are 2+ subjects and at least one subject with 2+ sequences."""
        check_subject_design(self.descriptor or "this descriptor", self.subjects, [int(c) for c in self.counts])

    def anova(self, weights: np.ndarray | None = None) -> SubjectAnova:
        """The between/within-subject analysis of every row and signal (``weights``: subject multiplicities)."""
        w = self.subject_weights(weights)
        self.check_design()
        return subject_anova(self.counts, self.sums, self.squares, w)

    def matrix(self, weights: np.ndarray | None = None) -> np.ndarray:
        """The row matrix ``[n_rows, n_features]``: separability and shared identity (``identity_rows``)."""
        return identity_rows(self.anova(weights))


@register_descriptor
class RowIdentity(_SilhouetteDescriptor):
    """row-identity: per row, how well its signals tell training subjects apart, and which rows share that.

    Per sequence, each row gets the features of a silhouette descriptor (``base``, default
    ``row-stats``: mean, spread, range and speed of occupancy, edges, centroid and change). Over the
    training subjects, a one-way analysis of variance per row and feature gives the between-subject
    share of the variance (intra-class correlation, a monotone map of the F ratio): the
    ``separability`` block. The ``shared-identity`` block correlates, across subjects, each row's
    subject means with every other row's, scaled by both rows' shares, so rows driven by the same
    trait cluster and rows of differing discriminability split. Both blocks weigh equally, and the
    columns are clustered as they are (not z-scored: ``standardize``). Needs subject labels: at least 2 subjects and one subject with 2+ sequences; constant rows get
    0. Features: f + f x n_rows, for the f features of ``base``.

    Args:
        n_rows: descriptor rows (``None``: the data height).
        base: registered silhouette descriptor whose per-sequence row features are compared.
    """

    name: ClassVar[str] = "row-identity"
    learns_from_subjects: ClassVar[bool] = True
    # Shares and shared correlations are on one scale where 0 means "no identity"; z-scoring would
    # blow a column of chance shares up to the weight of one that tells every subject apart.
    standardize: ClassVar[bool] = False

    def __init__(self, n_rows: int | None = None, base: str = "row-stats") -> None:
        super().__init__(n_rows)
        inner = create_descriptor(base, n_rows=n_rows)
        if inner.kind != "silhouette" or inner.learns_from_subjects:
            raise ValueError(
                f"row-identity compares the per-sequence features of a silhouette descriptor; {base!r} is not one "
                "(try row-stats or row-spectrum)"
            )
        self.base = base
        self._base = inner

    def feature_names(self) -> list[str]:
        """Names of the per-sequence columns (``describe``); ``IdentityStats`` names the row matrix's."""
        return self._base.feature_names()

    def check_subjects(self, subjects: Sequence[str]) -> None:
        counts = Counter(subjects)
        check_subject_design(self.name, list(counts), list(counts.values()))

    def row_features(self, x: np.ndarray) -> np.ndarray:
        return self._base.row_features(x)

    def describe(self, x: np.ndarray) -> np.ndarray:
        """The base descriptor's features ``[n_rows, f]`` of one sequence."""
        features = self._base.describe(x)
        self.n_rows = self._base.n_rows
        return features

    def new_stats(self) -> IdentityStats:
        if self.n_rows is None:
            raise ValueError("descriptor stats need n_rows; set it or describe a sequence first")
        return IdentityStats(self.n_rows, self.feature_names(), self.name)

    def __repr__(self) -> str:
        return f"RowIdentity(n_rows={self.n_rows}, base={self.base!r})"


__all__ = ["IDENTITY_BLOCKS", "IdentityStats", "RowIdentity", "SubjectAnova", "identity_rows", "subject_anova"]
