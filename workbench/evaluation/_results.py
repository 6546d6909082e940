"""Result types of the protocols: cross-view rank-1 tables and rank-k / mAP / mINP summaries.

Every result has ``summary() -> dict[str, float]`` (flat, percent, ready for MLflow), ``table()``
(printable text), ``primary_metric`` (the summary key a search maximises) and ``save(out_dir)``.
"""

from __future__ import annotations

import abc
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def _fmt(value: float) -> str:
    return "  -  " if math.isnan(value) else f"{value:6.2f}"


def _nanmean(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    # All-NaN slices (a probe view with no gallery view to compare) are expected, not worth a warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _write_summary(result: EvaluationResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    summary_path = out_dir / "summary.json"
    payload = {
        "protocol": result.protocol,
        "metric": result.metric,
        "primary_metric": result.primary_metric,
        "summary": {k: (None if math.isnan(v) else v) for k, v in result.summary().items()},
    }
    summary_path.write_text(json.dumps(payload, indent=2) + "\n")
    table_path = out_dir / "results.txt"
    table_path.write_text(result.table() + "\n")
    return [summary_path, table_path]


class EvaluationResult(abc.ABC):
    """Common interface of protocol results."""

    protocol: str
    metric: str
    primary_metric: str

    @abc.abstractmethod
    def summary(self) -> dict[str, float]:
        """Flat ``name -> value`` (percent) for logging."""

    @abc.abstractmethod
    def table(self) -> str:
        """A printable table of the results."""

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``summary.json``, ``results.txt`` and the protocol's figures/files; return their paths."""
        return _write_summary(self, Path(out_dir))

    def primary(self) -> float:
        """The value of ``primary_metric``."""
        return self.summary()[self.primary_metric]

    def __str__(self) -> str:
        return self.table()


@dataclass(frozen=True, eq=False)
class CrossViewResult(EvaluationResult):
    """Rank-1 per (probe view, gallery view) for each probe condition (CASIA-B, OUMVLP, synthetic).

    ``correct``, ``total`` and ``valid`` are ``int64 [conditions, views, views]`` counts (probe view
    x gallery view): probes matched correctly, probes evaluated, and probes whose id has a gallery
    sequence in that gallery view. Accuracy counts every probe (a probe without a gallery match is
    a miss); ``exclude_invalid=True`` divides by ``valid`` instead.
    """

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

    def _index(self, condition: str) -> int:
        if condition not in self.conditions:
            raise KeyError(f"condition {condition!r}: expected one of {', '.join(self.conditions)}")
        return self.conditions.index(condition)

    def accuracy(self, condition: str, exclude_invalid: bool = False) -> np.ndarray:
        """Rank-1 in percent ``[probe view, gallery view]``; NaN where nothing was compared."""
        c = self._index(condition)
        denominator = (self.valid if exclude_invalid else self.total)[c].astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(denominator > 0, 100.0 * self.correct[c] / denominator, np.nan)
        if self.exclude_identical:
            np.fill_diagonal(acc, np.nan)
        return acc

    def per_probe_view(self, condition: str, exclude_invalid: bool = False) -> np.ndarray:
        """Rank-1 per probe view, averaged over the gallery views (identical view excluded): ``[views]``."""
        return np.asarray(_nanmean(self.accuracy(condition, exclude_invalid), axis=1))

    def mean(self, condition: str, exclude_invalid: bool = False) -> float:
        """Rank-1 of a condition: the per-probe-view accuracies averaged over probe views."""
        return float(_nanmean(self.per_probe_view(condition, exclude_invalid)))

    def summary(self) -> dict[str, float]:
        """``rank1`` (the headline: mean over conditions), ``rank1_<condition>`` and ``rank1_mean``.

        Where probes without a gallery match are also reported excluded, the same keys follow with
        ``_excluded``.
        """
        out: dict[str, float] = {}
        variants = [False, True] if self.report_excluded else [False]
        for exclude in variants:
            suffix = "_excluded" if exclude else ""
            values = [self.mean(c, exclude) for c in self.conditions]
            mean = float(_nanmean(np.asarray(values)))
            out[f"rank1{suffix}"] = mean
            for condition, value in zip(self.conditions, values, strict=True):
                out[f"rank1_{condition.lower()}{suffix}"] = value
            out[f"rank1_mean{suffix}"] = mean
        return out

    def table(self) -> str:
        """Per-condition rank-1 per probe view, then the full probe-view x gallery-view tables."""
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
                lines.append(f"{condition:>6} {cells}  {_fmt(self.mean(condition, exclude))}")
        for condition in self.conditions:
            lines.append("")
            lines.append(f"{condition}: probe view (rows) x gallery view (columns)")
            lines.append(f"{'':>6} " + " ".join(f"{v:>6}" for v in views))
            acc = self.accuracy(condition)
            for i, view in enumerate(views):
                lines.append(f"{view:>6} " + " ".join(_fmt(float(v)) for v in acc[i]))
        return "\n".join(lines)

    def save(self, out_dir: str | Path) -> list[Path]:
        """``summary.json``, ``results.txt``, ``rank1_views.csv`` and the heat map ``rank1_views.png``."""
        from workbench.evaluation._figures import plot_view_heatmap

        out = Path(out_dir)
        paths = _write_summary(self, out)
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


@dataclass(frozen=True, eq=False)
class RankResult(EvaluationResult):
    """Rank-k accuracy (percent) and optionally mAP / mINP over a probe set (GREW, Gait3D).

    ``top_ids`` (``[P, k]`` gallery ids, nearest first) and ``probe_names`` are kept when the protocol
    writes a submission file.
    """

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

    @property
    def n_skipped(self) -> int:
        """Probes left out because no gallery sequence shares their id."""
        return self.n_probes - self.n_evaluated

    def summary(self) -> dict[str, float]:
        """``rank<k>`` for each k, plus ``map`` and ``minp`` where computed."""
        out = {f"rank{k}": v for k, v in sorted(self.ranks.items())}
        if self.map is not None:
            out["map"] = self.map
        if self.minp is not None:
            out["minp"] = self.minp
        return out

    def table(self) -> str:
        """One header line and one row of values."""
        summary = self.summary()
        head = f"{self.protocol}: {self.n_evaluated} of {self.n_probes} probes, {self.metric} distance"
        if self.n_skipped:
            head += f" ({self.n_skipped} without a gallery match skipped)"
        names = " ".join(f"{k:>8}" for k in summary)
        values = " ".join(f"{_fmt(v):>8}" for v in summary.values())
        return f"{head}\n{names}\n{values}"

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

    def save(self, out_dir: str | Path) -> list[Path]:
        """``summary.json``, ``results.txt`` and, for GREW, ``submission.csv``."""
        out = Path(out_dir)
        paths = _write_summary(self, out)
        if self.top_ids is not None:
            paths.append(self.write_submission(out / "submission.csv"))
        return paths
