"""Evaluation protocols by name: ``casia-b``, ``oumvlp``, ``grew``, ``gait3d`` and ``synthetic``.

A protocol picks gallery and probes from an ``EmbeddingSet`` (by sequence type, or by the Gait3D
``PROBE_SET`` flags), runs the chunked distance passes and returns a result with ``summary()``.
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

from workbench.evaluation._distance import check_metric
from workbench.evaluation._embeddings import EmbeddingSet
from workbench.evaluation._engine import cross_view_counts, retrieval_scores
from workbench.evaluation._metrics import cmc, mean_ap, mean_inp
from workbench.evaluation._results import CrossViewResult, EvaluationResult, RankResult


class Protocol(abc.ABC):
    """Base of the protocols: ``evaluate(data, metric=..., chunk_size=...) -> EvaluationResult``.

    ``subset`` names the partition subset a protocol evaluates on; ``needs_probe_flags`` says whether
    ``data.probe`` (Gait3D's ``PROBE_SET``) must be set.
    """

    name: str
    description: str
    subset: ClassVar[str] = "test"
    needs_probe_flags: ClassVar[bool] = False

    @abc.abstractmethod
    def evaluate(
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None
    ) -> EvaluationResult:
        """Evaluate ``data`` under this protocol."""


def _mask(types: np.ndarray, wanted: Sequence[str]) -> np.ndarray:
    return np.isin(types, np.asarray(list(wanted), dtype=str))


def _prepare(data: EmbeddingSet, metric: str) -> None:
    check_metric(metric)
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
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None
    ) -> CrossViewResult:
        """Rank-1 tables per condition; see ``CrossViewResult``."""
        _prepare(data, metric)
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
        self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None
    ) -> CrossViewResult:
        """Rank-1 per condition present, averaged like CASIA-B."""
        _prepare(data, metric)
        return self.layout(data.types.tolist()).evaluate(data, metric=metric, chunk_size=chunk_size)


@dataclass(frozen=True)
class GREWProtocol(Protocol):
    """Gallery type ``01`` vs probe type ``02``: rank-1/5/10/20, plus the top-20 ids for the submission CSV."""

    name: str = "grew"
    gallery_types: tuple[str, ...] = ("01",)
    probe_types: tuple[str, ...] = ("02",)
    ranks: tuple[int, ...] = (1, 5, 10, 20)
    description: str = "GREW: gallery 01, probe 02, rank-1/5/10/20 and the top-20 submission CSV"

    def evaluate(self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None) -> RankResult:
        """Rank-k over every probe (a probe whose id is not in the gallery counts as a miss)."""
        _prepare(data, metric)
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
        return RankResult(
            protocol=self.name,
            metric=metric,
            ranks=cmc(out.scores, self.ranks, valid_only=False),
            n_probes=len(out.scores),
            n_evaluated=len(out.scores),
            top_ids=g_ids[out.top_rows],
            probe_names=data.views[probe].tolist(),
        )


@dataclass(frozen=True)
class Gait3DProtocol(Protocol):
    """Probes from ``PROBE_SET``, gallery the rest: rank-1/5/10, mAP, mINP; probes without a match skipped."""

    name: str = "gait3d"
    ranks: tuple[int, ...] = (1, 5, 10)
    needs_probe_flags: ClassVar[bool] = True
    description: str = "Gait3D: PROBE_SET vs the rest of the test set, rank-1/5/10, mAP, mINP"

    def evaluate(self, data: EmbeddingSet, *, metric: str = "euclidean", chunk_size: int | None = None) -> RankResult:
        """Rank-k, mAP and mINP over the probes that have a gallery sequence of their id."""
        _prepare(data, metric)
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
        return RankResult(
            protocol=self.name,
            metric=metric,
            ranks=cmc(out.scores, self.ranks, valid_only=True),
            n_probes=len(out.scores),
            n_evaluated=int(out.scores.valid.sum()),
            map=mean_ap(out.scores),
            minp=mean_inp(out.scores),
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
    return sorted(_REGISTRY)


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol registered as ``name`` (a ``Protocol`` instance passes through)."""
    if isinstance(name, Protocol):
        return name
    if name not in _REGISTRY:
        raise ValueError(f"unknown protocol {name!r}: expected one of {', '.join(list_protocols())}")
    return _REGISTRY[name]()


def evaluate(
    data: EmbeddingSet,
    protocol: str | Protocol = "synthetic",
    *,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> EvaluationResult:
    """Evaluate embeddings under a protocol by name; see ``list_protocols()``."""
    return get_protocol(protocol).evaluate(data, metric=metric, chunk_size=chunk_size)
