"""``RankResult``: rank-k accuracy and optionally mAP / mINP over a probe set (GREW, Gait3D)."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from workbench.evaluation._results import (
    EvaluationResult,
    _check_resamples,
    _fmt,
    _fmt_interval,
    _write_files,
)
from workbench.evaluation._uncertainty import ratio

if TYPE_CHECKING:
    from workbench.evaluation._metrics import ProbeScores


@dataclass(frozen=True, eq=False)
class RankResult(EvaluationResult):
    """Rank-k accuracy (percent) and optionally mAP / mINP over a probe set (GREW, Gait3D).

    ``top_ids`` (``[P, k]`` gallery ids, nearest first) and ``probe_names`` are kept when the protocol
    writes a submission file. ``scores`` (per-probe first hit, AP, INP, positives) and
    ``probe_subjects`` (``[P]``, each probe's id) are what the intervals resample; every figure is a
    ratio of per-subject sums: rank-k hits over the probes counted (those with a gallery match when
    ``valid_only``, else all), AP and INP sums over the probes with a match. ``from_scores`` builds
    the figures that way.
    """

    kind: ClassVar[str] = "rank"
    protocol: str
    metric: str
    ranks: dict[int, float]
    n_probes: int
    n_evaluated: int
    map: float | None = None
    minp: float | None = None
    primary_metric: str = "rank1"
    top_ids: np.ndarray | None = None
    probe_names: list[str] = field(default_factory=list)
    scores: ProbeScores | None = None
    probe_subjects: np.ndarray | None = None
    valid_only: bool = True
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_resamples(self)
        if (self.scores is None) != (self.probe_subjects is None):
            missing = "probe_subjects" if self.probe_subjects is None else "scores"
            raise ValueError(f"{self.protocol}: per-probe scores need both scores and probe_subjects; {missing} "
                             "is missing")
        if self.scores is not None and self.probe_subjects is not None:
            if len(self.probe_subjects) != len(self.scores) or self.probe_subjects.ndim != 1:
                raise ValueError(f"probe_subjects: {list(self.probe_subjects.shape)} for {len(self.scores)} "
                                 "probes; give one id per probe")
            if len(self.scores) == 0:
                raise ValueError(f"{self.protocol}: scores hold no probe; nothing to resample")

    @classmethod
    def from_scores(
        cls,
        protocol: str,
        metric: str,
        scores: ProbeScores,
        probe_subjects: np.ndarray,
        ranks: Sequence[int],
        *,
        valid_only: bool,
        with_map: bool,
        top_ids: np.ndarray | None = None,
        probe_names: Sequence[str] = (),
        resamples: int = 1000,
        seed: int = 0,
    ) -> RankResult:
        """The result of per-probe ``scores``, its figures computed from the per-subject sums.

        ``valid_only``: rank-k counts only probes with a gallery match (else a probe without one is a
        miss); ``with_map``: also report mAP and mINP.
        """
        for k in ranks:
            if k < 1:
                raise ValueError(f"rank {k}: ranks are 1-based")
        nan = float("nan")
        draft = cls(
            protocol, metric, {int(k): nan for k in ranks}, n_probes=len(scores),
            n_evaluated=int(scores.valid.sum()) if valid_only else len(scores),
            map=nan if with_map else None, minp=nan if with_map else None, top_ids=top_ids,
            probe_names=list(probe_names), scores=scores, probe_subjects=np.asarray(probe_subjects, dtype=str),
            valid_only=valid_only, resamples=resamples, seed=seed,
        )
        assert draft.n_subjects is not None
        # All-ones weights: the headline is exactly what resampled() gives for them.
        figures = {k: float(v[0]) for k, v in draft.resampled(np.ones((1, draft.n_subjects))).items()}
        return dataclasses.replace(
            draft, ranks={k: figures[f"rank{k}"] for k in draft.ranks},
            map=figures.get("map"), minp=figures.get("minp"),
        )

    @property
    def n_skipped(self) -> int:
        """Probes left out because no gallery sequence shares their id."""
        return self.n_probes - self.n_evaluated

    @functools.cached_property
    def _subject_index(self) -> tuple[tuple[str, ...], np.ndarray] | None:
        if self.probe_subjects is None:
            return None
        subjects, inverse = np.unique(self.probe_subjects, return_inverse=True)
        return tuple(str(s) for s in subjects), inverse.reshape(-1)

    @property
    def subjects(self) -> tuple[str, ...] | None:
        """Sorted ids of the probe subjects, or ``None`` without per-probe scores."""
        index = self._subject_index
        return None if index is None else index[0]

    @functools.cached_property
    def _statistics(self) -> np.ndarray:
        self._require_statistics()
        assert self.scores is not None and self._subject_index is not None
        subjects, inverse = self._subject_index
        first_hit = self.scores.first_hit
        valid = self.scores.valid
        counted = valid if self.valid_only else np.ones(len(first_hit), dtype=bool)
        columns = [counted]
        columns += [counted & (first_hit >= 1) & (first_hit <= k) for k in sorted(self.ranks)]
        columns += [valid, np.where(valid, self.scores.ap, 0.0), np.where(valid, self.scores.inp, 0.0)]
        return np.stack([np.bincount(inverse, weights=np.asarray(c, dtype=np.float64), minlength=len(subjects))
                         for c in columns], axis=1)

    def _subject_statistics(self) -> np.ndarray:
        """Per subject: probes counted, rank-k hits for each k, probes with a match, AP sum, INP sum."""
        return self._statistics

    def _figures(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        ks = sorted(self.ranks)
        out = {f"rank{k}": ratio(sums[:, 1 + i], sums[:, 0]) for i, k in enumerate(ks)}
        matched = 1 + len(ks)
        if self.map is not None:
            out["map"] = ratio(sums[:, matched + 1], sums[:, matched])
        if self.minp is not None:
            out["minp"] = ratio(sums[:, matched + 2], sums[:, matched])
        return out

    def _headline(self) -> dict[str, float]:
        """``rank<k>`` for each k, plus ``map`` and ``minp`` where computed."""
        out = {f"rank{k}": v for k, v in sorted(self.ranks.items())}
        if self.map is not None:
            out["map"] = self.map
        if self.minp is not None:
            out["minp"] = self.minp
        return out

    def table(self) -> str:
        """One header line, one row of values and, with intervals, one row of intervals."""
        headline = self._headline()
        head = f"{self.protocol}: {self.n_evaluated} of {self.n_probes} probes, {self.metric} distance"
        if self.n_skipped:
            head += f" ({self.n_skipped} without a gallery match skipped)"
        intervals = [self.interval(k) for k in headline]
        width = 8 if None in intervals else 16
        lines = [head, " ".join(f"{k:>{width}}" for k in headline),
                 " ".join(f"{_fmt(v):>{width}}" for v in headline.values())]
        if width > 8:
            lines.append(" ".join(f"{_fmt_interval(*i):>{width}}" for i in intervals if i is not None))
            lines.append(self._interval_note())
        return "\n".join(lines)

    def write_submission(self, path: str | Path) -> Path:
        """Write the GREW submission CSV: ``videoId,rank1,...,rank20``, one row per probe.

        ``videoId`` is the probe's name (its view folder, where OpenGait's GREW layout keeps the video
        id); ``rankK`` is the id of the K-th nearest gallery sequence (ids may repeat when an id has
        several gallery sequences, as in OpenGait's export).
        """
        if self.top_ids is None:
            raise ValueError(f"{self.protocol}: this result keeps no top-k ids; only 'grew' writes a submission")
        path = Path(path)
        k = self.top_ids.shape[1]
        with path.open("w") as fh:
            fh.write("videoId," + ",".join(f"rank{i}" for i in range(1, k + 1)) + "\n")
            for name, row in zip(self.probe_names, self.top_ids, strict=True):
                fh.write(name + "," + ",".join(str(v) for v in row) + "\n")
        return path

    def _arrays(self) -> dict[str, np.ndarray]:
        # top_ids/probe_names are left out: submission.csv already holds them.
        arrays = {
            "ranks": np.asarray(sorted(self.ranks), dtype=np.int64),
            "rank_values": np.asarray([self.ranks[k] for k in sorted(self.ranks)], dtype=np.float64),
            "n_probes": np.asarray(self.n_probes), "n_evaluated": np.asarray(self.n_evaluated),
            "valid_only": np.asarray(self.valid_only),
        }
        if self.map is not None:
            arrays["map"] = np.asarray(self.map)
        if self.minp is not None:
            arrays["minp"] = np.asarray(self.minp)
        if self.scores is not None and self.probe_subjects is not None:
            arrays["probe_subjects"] = self.probe_subjects
            arrays.update(first_hit=self.scores.first_hit, ap=self.scores.ap, inp=self.scores.inp,
                          positives=self.scores.positives)
        return arrays

    def save(self, out_dir: str | Path) -> list[Path]:
        """``summary.json``, ``results.txt``, ``subject_scores.npz`` and, for GREW, ``submission.csv``."""
        out = Path(out_dir)
        paths = _write_files(self, out)
        if self.top_ids is not None:
            paths.append(self.write_submission(out / "submission.csv"))
        return paths
