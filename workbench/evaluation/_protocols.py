"""Evaluation protocols by name: ``casia-b``, ``oumvlp``, ``grew``, ``gait3d`` and ``synthetic``.

A protocol picks gallery and probes from an ``EmbeddingSet`` (by sequence type, or by the Gait3D
``PROBE_SET`` flags), runs the chunked distance passes and returns a result with ``summary()``, each
figure with a 95 % interval from a bootstrap over the probe subjects (``resamples``, ``seed``).
``paired_difference`` evaluates two models' embeddings of one test set and compares them subject by
subject.
"""

from __future__ import annotations

import abc
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from workbench._plugins import load_entry_points
from workbench.evaluation._distance import check_metric
from workbench.evaluation._embeddings import EmbeddingSet
from workbench.evaluation._engine import cross_view_counts, retrieval_scores
from workbench.evaluation._rank_result import RankResult
from workbench.evaluation._results import CrossViewResult, EvaluationResult
from workbench.evaluation._uncertainty import paired_results


class Protocol(abc.ABC):
    """Base of the protocols: ``evaluate(data, metric=, chunk_size=, resamples=, seed=) -> EvaluationResult``.

    ``subset`` names the partition subset a protocol evaluates on; ``needs_probe_flags`` says whether
    ``data.probe`` (Gait3D's ``PROBE_SET``) must be set. ``resamples`` (0: none) and ``seed`` set the
    subject bootstrap behind the summary's intervals.
    """

    name: str
    description: str
    subset: ClassVar[str] = "test"
    needs_probe_flags: ClassVar[bool] = False

    @abc.abstractmethod
    def evaluate(
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None,
        resamples: int = 1000, seed: int = 0,
    ) -> EvaluationResult:
        """Evaluate ``data`` under this protocol."""


def _mask(types: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    return np.isin(types, np.asarray(list(wanted), dtype=str))


def _prepare(data: EmbeddingSet, metric: str, resamples: int) -> None:
    check_metric(metric)
    if resamples < 0:
        raise ValueError(f"resamples: {resamples}; give 0 (no intervals) or more")
    if len(data) == 0:
        raise ValueError("embeddings: the set is empty; nothing to evaluate")
    data.check_finite()


@dataclass(frozen=True)
class CrossViewProtocol(Protocol):
    """Gallery types vs probe conditions, rank-1 per (probe view, gallery view) (CASIA-B style).

    Args:
        name: registry name, also shown in the results.
        gallery_types: sequence types forming the gallery.
        conditions: condition name -> probe sequence types (e.g. ``{"NM": ("nm-05", "nm-06")}``).
        exclude_identical: leave out the probe-view == gallery-view cells.
        report_excluded: also report rank-1 with probes whose id has no gallery sequence left out.
    """

    name: str
    gallery_types: tuple[str, ...]
    conditions: Mapping[str, tuple[str, ...]]
    exclude_identical: bool = True
    report_excluded: bool = False
    description: str = ""

    def evaluate(
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None,
        resamples: int = 1000, seed: int = 0,
    ) -> CrossViewResult:
        """Rank-1 tables per condition, kept per probe subject; see ``CrossViewResult``."""
        _prepare(data, metric, resamples)
        gallery = _mask(data.types, self.gallery_types)
        if not gallery.any():
            present = ", ".join(sorted(set(data.types.tolist()))[:12])
            raise ValueError(
                f"{self.name}: no gallery sequences of types {', '.join(self.gallery_types)} "
                f"(the data has types {present}); pick the protocol that matches the dataset"
            )
        probes: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for condition, types in self.conditions.items():
            mask = _mask(data.types, types)
            if mask.any():
                probes[condition] = (data.embeddings[mask], data.ids[mask], data.views[mask])
            else:
                warnings.warn(
                    f"{self.name}: no probe sequences of types {', '.join(types)}; condition {condition} "
                    "is left out",
                    stacklevel=2,
                )
        if not probes:
            raise ValueError(f"{self.name}: none of the probe types {dict(self.conditions)} is in the data")
        used = gallery | _mask(data.types, [t for ts in self.conditions.values() for t in ts])
        views = tuple(sorted(set(data.views[used].tolist())))
        counts = cross_view_counts(
            data.embeddings[gallery], data.ids[gallery], data.views[gallery], probes, views, metric, chunk_size
        )
        return CrossViewResult(
            protocol=self.name,
            metric=metric,
            views=views,
            conditions=tuple(probes),
            correct=counts.correct,
            total=counts.total,
            valid=counts.valid,
            exclude_identical=self.exclude_identical and len(views) > 1,
            report_excluded=self.report_excluded,
            subject_correct=counts.subject_correct,
            subject_total=counts.subject_total,
            subject_valid=counts.subject_valid,
            subjects=counts.subjects,
            resamples=resamples,
            seed=seed,
        )


_SYNTH_TYPE = re.compile(r"^(nm|bg|cl)-\d+$")


@dataclass(frozen=True)
class SyntheticProtocol(Protocol):
    """The CASIA-B protocol adapted to whichever ``nm``/``bg``/``cl`` types and views the data has.

    The gallery is the first two thirds of the ``nm`` types (nm-01..04 of six), the remaining ``nm``
    types are the NM probes, every ``bg``/``cl`` type probes its condition. With a single view the
    identical view is kept (there is nothing else to compare).
    """

    name: str = "synthetic"
    description: str = "CASIA-B protocol on synthetic data, adapted to the types and views present"

    def layout(self, types: Sequence[str]) -> CrossViewProtocol:
        """The concrete cross-view protocol for a set of sequence types."""
        known = sorted({t for t in types if _SYNTH_TYPE.match(t)})
        by_condition = {c: [t for t in known if t.startswith(c + "-")] for c in ("nm", "bg", "cl")}
        nm = by_condition["nm"]
        if not nm:
            raise ValueError(
                f"{self.name}: no nm-NN sequences to form the gallery (types found: "
                f"{', '.join(sorted(set(types))[:12])}); render data with nm types"
            )
        n_gallery = max(1, len(nm) - math.ceil(len(nm) / 3))
        conditions = {"NM": tuple(nm[n_gallery:]), "BG": tuple(by_condition["bg"]), "CL": tuple(by_condition["cl"])}
        conditions = {k: v for k, v in conditions.items() if v}
        if not conditions:
            raise ValueError(f"{self.name}: only gallery types ({', '.join(nm)}) present; no probes to evaluate")
        return CrossViewProtocol(self.name, tuple(nm[:n_gallery]), conditions, description=self.description)

    def evaluate(
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None,
        resamples: int = 1000, seed: int = 0,
    ) -> CrossViewResult:
        """Rank-1 per condition present, averaged like CASIA-B."""
        _prepare(data, metric, resamples)
        return self.layout(data.types.tolist()).evaluate(
            data, metric=metric, chunk_size=chunk_size, resamples=resamples, seed=seed
        )


@dataclass(frozen=True)
class GREWProtocol(Protocol):
    """Gallery type ``01`` vs probe type ``02``: rank-1/5/10/20, plus the top-20 ids for the submission CSV."""

    name: str = "grew"
    gallery_types: tuple[str, ...] = ("01",)
    probe_types: tuple[str, ...] = ("02",)
    ranks: tuple[int, ...] = (1, 5, 10, 20)
    description: str = "GREW: gallery 01, probe 02, rank-1/5/10/20 and the top-20 submission CSV"

    def evaluate(
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None,
        resamples: int = 1000, seed: int = 0,
    ) -> RankResult:
        """Rank-k over every probe (a probe whose id is not in the gallery counts as a miss)."""
        _prepare(data, metric, resamples)
        gallery, probe = _mask(data.types, self.gallery_types), _mask(data.types, self.probe_types)
        for kind, mask, types in (("gallery", gallery, self.gallery_types), ("probe", probe, self.probe_types)):
            if not mask.any():
                raise ValueError(f"{self.name}: no {kind} sequences of types {', '.join(types)} in the data")
        g_ids = data.ids[gallery]
        out = retrieval_scores(
            data.embeddings[probe], data.ids[probe], data.embeddings[gallery], g_ids, metric,
            top_k=max(self.ranks), chunk_size=chunk_size,
        )
        assert out.top_rows is not None
        return RankResult.from_scores(
            self.name, metric, out.scores, data.ids[probe], self.ranks, valid_only=False, with_map=False,
            top_ids=g_ids[out.top_rows], probe_names=data.views[probe].tolist(), resamples=resamples, seed=seed,
        )


@dataclass(frozen=True)
class Gait3DProtocol(Protocol):
    """Probes from ``PROBE_SET``, gallery the rest: rank-1/5/10, mAP, mINP; probes without a match skipped."""

    name: str = "gait3d"
    ranks: tuple[int, ...] = (1, 5, 10)
    needs_probe_flags: ClassVar[bool] = True
    description: str = "Gait3D: PROBE_SET vs the rest of the test set, rank-1/5/10, mAP, mINP"

    def evaluate(
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None,
        resamples: int = 1000, seed: int = 0,
    ) -> RankResult:
        """Rank-k, mAP and mINP over the probes that have a gallery sequence of their id."""
        _prepare(data, metric, resamples)
        if data.probe is None:
            raise ValueError(
                f"{self.name}: the embeddings carry no PROBE_SET flags; open the test set with a partition "
                "file that lists PROBE_SET (id-type-view keys) and set EmbeddingSet.probe"
            )
        probe = data.probe
        if not probe.any() or probe.all():
            raise ValueError(
                f"{self.name}: PROBE_SET selects {int(probe.sum())} of {len(probe)} sequences; "
                "both probe and gallery need at least one sequence"
            )
        out = retrieval_scores(
            data.embeddings[probe], data.ids[probe], data.embeddings[~probe], data.ids[~probe], metric,
            chunk_size=chunk_size,
        )
        return RankResult.from_scores(
            self.name, metric, out.scores, data.ids[probe], self.ranks, valid_only=True, with_map=True,
            resamples=resamples, seed=seed,
        )


_CASIA_B = CrossViewProtocol(
    name="casia-b",
    gallery_types=("nm-01", "nm-02", "nm-03", "nm-04"),
    conditions={"NM": ("nm-05", "nm-06"), "BG": ("bg-01", "bg-02"), "CL": ("cl-01", "cl-02")},
    description="CASIA-B: gallery nm-01..04, probes nm-05/06, bg-01/02, cl-01/02, identical views excluded",
)
_OUMVLP = CrossViewProtocol(
    name="oumvlp",
    gallery_types=("01",),
    conditions={"NM": ("00",)},
    report_excluded=True,
    description="OUMVLP: gallery 01, probe 00, cross-view; rank-1 counting and excluding probes without a match",
)

_REGISTRY: dict[str, Callable[[], Protocol]] = {}
#: Entry-point group of other distributions' protocols (``workbench._plugins``).
PLUGIN_GROUP = "workbench.protocols"


def register_protocol(name: str) -> Callable[[Callable[[], Protocol]], Callable[[], Protocol]]:
    """Decorator registering a zero-argument protocol factory under ``name`` (duplicates are errors)."""

    def decorate(factory: Callable[[], Protocol]) -> Callable[[], Protocol]:
        if name in _REGISTRY:
            raise ValueError(f"protocol {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return decorate


register_protocol("casia-b")(lambda: _CASIA_B)
register_protocol("oumvlp")(lambda: _OUMVLP)
register_protocol("grew")(GREWProtocol)
register_protocol("gait3d")(Gait3DProtocol)
register_protocol("synthetic")(SyntheticProtocol)


def list_protocols() -> list[str]:
    """Names of the registered protocols, sorted."""
    load_entry_points(PLUGIN_GROUP)
    return sorted(_REGISTRY)


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol registered as ``name`` (a ``Protocol`` instance passes through)."""
    if isinstance(name, Protocol):
        return name
    load_entry_points(PLUGIN_GROUP)
    if name not in _REGISTRY:
        raise ValueError(f"unknown protocol {name!r}: expected one of {', '.join(list_protocols())}")
    return _REGISTRY[name]()


def evaluate(
    data: EmbeddingSet,
    protocol: str | Protocol = "synthetic",
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Evaluate embeddings under a protocol by name; see ``list_protocols()``.

    ``resamples`` subject-bootstrap resamples (0: no intervals) drawn with ``seed`` give each summary
    figure its 95 % interval; the gallery stays fixed.
    """
    return get_protocol(protocol).evaluate(data, metric=metric, chunk_size=chunk_size, resamples=resamples, seed=seed)


def _check_same_sequences(a: EmbeddingSet, b: EmbeddingSet) -> None:
    if len(a) != len(b):
        raise ValueError(f"embedding sets: a has {len(a)} sequences, b {len(b)}; embed the same test set with both "
                         "models")
    order_a = np.lexsort((a.views, a.types, a.ids))
    order_b = np.lexsort((b.views, b.types, b.ids))
    for name in ("ids", "types", "views"):
        values_a, values_b = getattr(a, name)[order_a], getattr(b, name)[order_b]
        differ = np.flatnonzero(values_a != values_b)
        if len(differ):
            i = int(differ[0])
            raise ValueError(
                f"embedding sets: {name} differ ({len(differ)} sequences after sorting by id-type-view; first: "
                f"{a.keys[order_a[i]]} in a, {b.keys[order_b[i]]} in b); embed the same test set with both models"
            )
    if (a.probe is None) != (b.probe is None) or (
        a.probe is not None and b.probe is not None and not np.array_equal(a.probe[order_a], b.probe[order_b])
    ):
        raise ValueError("embedding sets: probe flags (PROBE_SET) differ; open both with the same partition file")


def paired_difference(
    a: EmbeddingSet,
    b: EmbeddingSet,
    protocol: str | Protocol,
    *,
    metric: str = "euclidean",
    resamples: int = 1000,
    seed: int = 0,
    key: str | None = None,
    chunk_size: int | None = None,
) -> dict[str, float]:
    """Compare two models' embeddings of the same test sequences under ``protocol``, subject by subject.

    Returns ``delta`` (``evaluate(a)`` minus ``evaluate(b)`` on ``key``, default the protocol's
    primary metric), its paired-bootstrap 95 % interval ``ci_low``/``ci_high``, the two-sided
    ``p_value`` of a subject swap permutation test, ``n_subjects`` and ``resamples``; see
    ``paired_results``. Raises ``ValueError`` naming what differs when the sets hold other sequences.
    """
    _check_same_sequences(a, b)
    proto = get_protocol(protocol)
    result_a = proto.evaluate(a, metric=metric, chunk_size=chunk_size, resamples=0)
    result_b = proto.evaluate(b, metric=metric, chunk_size=chunk_size, resamples=0)
    return paired_results(result_a, result_b, key=key, resamples=resamples, seed=seed)
