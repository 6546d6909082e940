"""Result types of the protocols: cross-view rank-1 tables and rank-k / mAP / mINP summaries.

Every result has ``summary() -> dict[str, float]`` (flat, percent, ready for MLflow), ``table()``
(printable text), ``primary_metric`` (the summary key a search maximises) and ``save(out_dir)``.
Results that keep per-subject statistics (every protocol's do) also give ``resampled(weights)`` and
add a 95 % bootstrap interval over the probe subjects to each summary figure (see ``_uncertainty``).
"""

from __future__ import annotations

import abc
import functools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from workbench.evaluation._uncertainty import (
    interval_keys,
    nanmean,
    ratio,
    subject_weights,
    weighted_sums,
    with_intervals,
)

SUBJECT_SCORES = "subject_scores.npz"


def _fmt(value: float) -> str:
    return "  -  " if math.isnan(value) else f"{value:6.2f}"


def _fmt_interval(low: float, high: float) -> str:
    return f"[{_fmt(low).strip()}, {_fmt(high).strip()}]"


def _write_files(result: EvaluationResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "summary.json"
    payload = {
        "protocol": result.protocol,
        "metric": result.metric,
        "primary_metric": result.primary_metric,
        "n_subjects": result.n_subjects,
        "resamples": result.resamples,
        "seed": result.seed,
        "summary": {k: (None if math.isnan(v) else v) for k, v in result.summary().items()},
    }
    summary_path.write_text(json.dumps(payload, indent=2) + "\n")
    table_path = out_dir / "results.txt"
    table_path.write_text(result.table() + "\n")
    scores_path = out_dir / SUBJECT_SCORES
    # Last and whole or not at all (temp file, then a rename): its presence marks a saved result, so a
    # process killed while writing it leaves a result that is computed again, not one that cannot be read.
    tmp = scores_path.with_name(f".{scores_path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            # Compressed: the per-subject counts are mostly zeros and small integers (about a tenth of the size).
            np.savez_compressed(fh, kind=np.asarray(result.kind), **result._arrays())  # type: ignore[arg-type]
        os.replace(tmp, scores_path)
    finally:
        tmp.unlink(missing_ok=True)
    return [summary_path, table_path, scores_path]


class EvaluationResult(abc.ABC):
    """Common interface of protocol results.

    ``subjects`` (sorted probe subject ids, or ``None`` for a result built without per-subject
    statistics) are the units of the bootstrap: ``resampled(weights)`` recomputes every headline
    figure under subject weights, and ``summary()`` adds ``<key>_ci_low``/``<key>_ci_high`` (95 %
    percentile interval over ``resamples`` resamples drawn with ``seed``; none when ``resamples`` is
    0 or the statistics are absent). The gallery is never resampled: it sets the task.
    """

    kind: ClassVar[str]
    protocol: str
    metric: str
    primary_metric: str
    resamples: int
    seed: int

    @property
    @abc.abstractmethod
    def subjects(self) -> tuple[str, ...] | None:
        """Sorted ids of the probe subjects (``None`` when the result keeps no per-subject statistics)."""

    @abc.abstractmethod
    def _headline(self) -> dict[str, float]:
        """The summary figures without intervals."""

    @abc.abstractmethod
    def _subject_statistics(self) -> np.ndarray:
        """Per-subject sufficient statistics ``float64 [subjects, m]`` (raises if absent)."""

    @abc.abstractmethod
    def _figures(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        """Headline figures from subject-weighted sums of the statistics: ``[r, m]`` -> ``{key: [r]}``."""

    @abc.abstractmethod
    def _arrays(self) -> dict[str, np.ndarray]:
        """What ``subject_scores.npz`` holds besides ``kind``."""

    @abc.abstractmethod
    def table(self) -> str:
        """A printable table of the results."""

    @property
    def n_subjects(self) -> int | None:
        """The number of probe subjects (``None`` without per-subject statistics)."""
        subjects = self.subjects
        return None if subjects is None else len(subjects)

    def _require_statistics(self) -> None:
        if self.subjects is None:
            raise ValueError(
                f"{self.protocol}: this result keeps no per-subject statistics; build it with a protocol's "
                "evaluate() or read it with load_result from a folder holding subject_scores.npz"
            )

    def resampled(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """Every headline figure under subject weights: ``weights [r, n_subjects]`` -> ``{key: [r]}``.

        Weights of all ones reproduce the headline; ``subject_weights`` draws bootstrap weights.
        """
        self._require_statistics()
        weights = np.asarray(weights, dtype=np.float64)
        if weights.ndim != 2 or weights.shape[1] != self.n_subjects:
            raise ValueError(
                f"weights: expected [resamples, {self.n_subjects}] (one column per probe subject), "
                f"got {list(weights.shape)}"
            )
        return self._figures(weighted_sums(weights, self._subject_statistics()))

    @functools.cached_property
    def _summary(self) -> dict[str, float]:
        headline = self._headline()
        if self.resamples == 0 or self.n_subjects is None:
            return headline
        weights = subject_weights(self.n_subjects, self.resamples, self.seed)
        return with_intervals(headline, self.resampled(weights))

    def summary(self) -> dict[str, float]:
        """Flat ``name -> value`` (percent) for logging, each figure followed by its interval keys."""
        return dict(self._summary)

    def interval(self, key: str) -> tuple[float, float] | None:
        """The 95 % interval of a summary figure, or ``None`` where the summary has none."""
        low, high = interval_keys(key)
        summary = self._summary
        return (summary[low], summary[high]) if low in summary else None

    def _interval_note(self) -> str:
        """The line under a table that says what the intervals are (empty without intervals)."""
        if self.interval(self.primary_metric) is None:
            return ""
        return (f"[low, high]: 95 % interval, bootstrap over {self.n_subjects} test subjects "
                f"(gallery fixed), {self.resamples} resamples")

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``summary.json``, ``results.txt``, ``subject_scores.npz`` and the protocol's files."""
        return _write_files(self, Path(out_dir))

    def primary(self) -> float:
        """The value of ``primary_metric``."""
        return self._headline()[self.primary_metric]

    def __str__(self) -> str:
        return self.table()


def _check_resamples(result: EvaluationResult) -> None:
    if result.resamples < 0:
        raise ValueError(f"resamples: {result.resamples}; give 0 (no intervals) or more")


def _compared(denominator: np.ndarray, exclude_identical: bool) -> np.ndarray:
    """``bool [..., views, views]``: the cells that count (something compared, off the diagonal if asked)."""
    compared = denominator > 0
    if exclude_identical:
        compared &= ~np.eye(compared.shape[-1], dtype=bool)
    return compared


def _view_means(correct: np.ndarray, denominator: np.ndarray, exclude_identical: bool) -> np.ndarray:
    """Rank-1 per probe view averaged over the gallery views that count: ``[..., views, views]`` -> ``[..., views]``.

    The operations of ``nanmean(accuracy, axis=-1)`` in fewer passes: the bootstrap runs this on
    ``[resamples, conditions, views, views]``.
    """
    compared = denominator > 0
    # Where nothing was compared nothing was correct (correct <= denominator): dividing by 1 gives 0 there.
    acc = np.multiply(correct, 100.0, dtype=np.float64)
    acc /= np.where(compared, denominator, 1.0)
    if exclude_identical:
        diagonal = np.arange(acc.shape[-1])
        acc[..., diagonal, diagonal] = 0.0
        compared[..., diagonal, diagonal] = False
    with np.errstate(invalid="ignore", divide="ignore"):
        return acc.sum(-1) / compared.sum(-1)  # NaN for a probe view with no gallery view to compare


@dataclass(frozen=True, eq=False)
class CrossViewResult(EvaluationResult):
    """Rank-1 per (probe view, gallery view) for each probe condition (CASIA-B, OUMVLP, synthetic).

    ``correct``, ``total`` and ``valid`` are ``int64 [conditions, views, views]`` counts (probe view
    x gallery view): probes matched correctly, probes evaluated, and probes whose id has a gallery
    sequence in that gallery view. Accuracy counts every probe (a probe without a gallery match is
    a miss); ``exclude_invalid=True`` divides by ``valid`` instead. ``subject_correct`` etc.
    (``int64 [subjects, conditions, views, views]``, summing to the counts) split them by the probe
    subjects named in ``subjects``; they are optional, and the intervals need them. ``resamples`` (0:
    no intervals) and ``seed`` set the subject bootstrap of ``summary()``.
    """

    kind: ClassVar[str] = "cross-view"
    protocol: str
    metric: str
    views: tuple[str, ...]
    conditions: tuple[str, ...]
    correct: np.ndarray
    total: np.ndarray
    valid: np.ndarray
    exclude_identical: bool = True
    report_excluded: bool = False
    primary_metric: str = "rank1"
    subject_correct: np.ndarray | None = None
    subject_total: np.ndarray | None = None
    subject_valid: np.ndarray | None = None
    subjects: tuple[str, ...] | None = None
    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_resamples(self)
        per_subject = {"subject_correct": self.subject_correct, "subject_total": self.subject_total,
                       "subject_valid": self.subject_valid}
        given = [name for name, value in per_subject.items() if value is not None]
        if self.subjects is None and not given:
            return
        if self.subjects is None or len(given) < 3:
            missing = [n for n in [*per_subject, "subjects"] if getattr(self, n) is None]
            raise ValueError(f"{self.protocol}: per-subject counts need all four fields; missing {missing}")
        shape = (len(self.subjects), *self.correct.shape)
        for name, value in per_subject.items():
            assert value is not None
            if value.shape != shape:
                raise ValueError(f"{name}: expected [subjects, conditions, views, views] = {list(shape)}, "
                                 f"got {list(value.shape)}")
            if not np.array_equal(value.sum(0), getattr(self, name.removeprefix("subject_"))):
                raise ValueError(f"{name}: its sum over subjects differs from {name.removeprefix('subject_')}")

    def _index(self, condition: str) -> int:
        if condition not in self.conditions:
            raise KeyError(f"condition {condition!r}: expected one of {', '.join(self.conditions)}")
        return self.conditions.index(condition)

    def accuracy(self, condition: str, exclude_invalid: bool = False) -> np.ndarray:
        """Rank-1 in percent ``[probe view, gallery view]``; NaN where nothing was compared."""
        c = self._index(condition)
        denominator = (self.valid if exclude_invalid else self.total)[c]
        return np.where(_compared(denominator, self.exclude_identical), ratio(self.correct[c], denominator), np.nan)

    def per_probe_view(self, condition: str, exclude_invalid: bool = False) -> np.ndarray:
        """Rank-1 per probe view, averaged over the gallery views (identical view excluded): ``[views]``."""
        c = self._index(condition)
        denominator = (self.valid if exclude_invalid else self.total)[c]
        return _view_means(self.correct[c], denominator, self.exclude_identical)

    def mean(self, condition: str, exclude_invalid: bool = False) -> float:
        """Rank-1 of a condition: the per-probe-view accuracies averaged over probe views."""
        return float(nanmean(self.per_probe_view(condition, exclude_invalid), axis=0))

    def _figures(self, sums: np.ndarray) -> dict[str, np.ndarray]:
        counts = sums.reshape(len(sums), -1, *self.correct.shape)  # [r, correct/total(/valid), C, V, V]
        out: dict[str, np.ndarray] = {}
        for exclude in [False, True] if self.report_excluded else [False]:
            suffix = "_excluded" if exclude else ""
            per_view = _view_means(counts[:, 0], counts[:, 2 if exclude else 1], self.exclude_identical)
            by_condition = nanmean(per_view, axis=-1)  # [r, conditions]
            mean = nanmean(by_condition, axis=-1)
            out[f"rank1{suffix}"] = mean
            for c, condition in enumerate(self.conditions):
                out[f"rank1_{condition.lower()}{suffix}"] = by_condition[:, c]
            out[f"rank1_mean{suffix}"] = mean
        return out

    def _headline(self) -> dict[str, float]:
        """``rank1`` (the headline: mean over conditions), ``rank1_<condition>`` and ``rank1_mean``.

        Where probes without a gallery match are also reported excluded, the same keys follow with
        ``_excluded``.
        """
        # valid matters only where probes without a gallery match are also reported excluded.
        counts = [self.correct, self.total, self.valid] if self.report_excluded else [self.correct, self.total]
        sums = np.stack(counts).reshape(1, -1)
        return {key: float(values[0]) for key, values in self._figures(sums).items()}

    def _per_subject(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self._require_statistics()
        assert self.subject_correct is not None and self.subject_total is not None and self.subject_valid is not None
        return self.subject_correct, self.subject_total, self.subject_valid

    @functools.cached_property
    def _statistics(self) -> np.ndarray:
        correct, total, valid = self._per_subject()
        counts = np.stack([correct, total, valid] if self.report_excluded else [correct, total], axis=1)
        return counts.reshape(len(counts), -1).astype(np.float64)  # [subjects, correct/total(/valid) x C x V x V]

    def _subject_statistics(self) -> np.ndarray:
        return self._statistics

    def table(self) -> str:
        """Per-condition rank-1 per probe view (mean and its interval), then the full view x view tables."""
        views = self.views
        identical = "excluded" if self.exclude_identical else "included"
        lines = [f"{self.protocol}: rank-1 (%), {self.metric} distance, identical views {identical}"]
        variants = [(False, "")] + ([(True, " (probes without a gallery match excluded)")]
                                    if self.report_excluded else [])
        for exclude, note in variants:
            lines.append("")
            lines.append(f"per probe view{note}")
            lines.append(f"{'':>6} " + " ".join(f"{v:>6}" for v in views) + "    mean")
            for condition in self.conditions:
                row = self.per_probe_view(condition, exclude)
                cells = " ".join(_fmt(float(v)) for v in row)
                line = f"{condition:>6} {cells}  {_fmt(self.mean(condition, exclude))}"
                interval = self.interval(f"rank1_{condition.lower()}{'_excluded' if exclude else ''}")
                lines.append(line + (f" {_fmt_interval(*interval)}" if interval else ""))
            key = f"rank1{'_excluded' if exclude else ''}"
            interval = self.interval(key)
            overall = f"rank-1, mean over conditions: {_fmt(self._headline()[key]).strip()}"
            lines.append(overall + (f" {_fmt_interval(*interval)}" if interval else ""))
        if self._interval_note():
            lines.append(self._interval_note())
        for condition in self.conditions:
            lines.append("")
            lines.append(f"{condition}: probe view (rows) x gallery view (columns)")
            lines.append(f"{'':>6} " + " ".join(f"{v:>6}" for v in views))
            acc = self.accuracy(condition)
            for i, view in enumerate(views):
                lines.append(f"{view:>6} " + " ".join(_fmt(float(v)) for v in acc[i]))
        return "\n".join(lines)

    def _arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "views": np.asarray(self.views, dtype=str), "conditions": np.asarray(self.conditions, dtype=str),
            "correct": self.correct, "total": self.total, "valid": self.valid,
            "exclude_identical": np.asarray(self.exclude_identical),
            "report_excluded": np.asarray(self.report_excluded),
        }
        if self.subjects is not None:
            correct, total, valid = self._per_subject()
            arrays.update(subjects=np.asarray(self.subjects, dtype=str), subject_correct=correct,
                          subject_total=total, subject_valid=valid)
        return arrays

    def save(self, out_dir: str | Path) -> list[Path]:
        """``summary.json``, ``results.txt``, ``subject_scores.npz``, ``rank1_views.csv`` and ``rank1_views.png``."""
        from workbench.evaluation._figures import plot_view_heatmap

        out = Path(out_dir)
        paths = _write_files(self, out)
        csv_path = out / "rank1_views.csv"
        with csv_path.open("w") as fh:
            fh.write("condition,probe_view,gallery_view,rank1,correct,total,valid\n")
            for c, condition in enumerate(self.conditions):
                acc = self.accuracy(condition)
                for i, pv in enumerate(self.views):
                    for j, gv in enumerate(self.views):
                        value = "" if math.isnan(acc[i, j]) else f"{acc[i, j]:.4f}"
                        counts = f"{self.correct[c, i, j]},{self.total[c, i, j]},{self.valid[c, i, j]}"
                        fh.write(f"{condition},{pv},{gv},{value},{counts}\n")
        figure = plot_view_heatmap(self, out / "rank1_views.png")
        return [*paths, csv_path, figure]
