"""Configurations compared over training seeds and subjects: per-configuration intervals, paired deltas, a verdict.

Two sources of noise separate a figure from the truth: the training seed (initialisation and data
order) and the evaluated subjects. Each configuration is trained on the same list of seeds and
scored on the same subjects, so differences are taken seed by seed (common random numbers). For a
mean over ``n`` seeds the variance is the seed part, ``s^2 / n`` from the spread of the seeds'
figures, plus the subject part, the variance of that mean over a bootstrap of the subjects in which
every seed and every configuration shares the same resampled subjects. The interval is
``mean +- t(0.975, df) * sqrt(seed part + subject part)``, ``df`` from Welch-Satterthwaite (the seed
part has ``n - 1`` degrees of freedom, the subject part many), and the p-value is the matching t test;
with one seed the seed part is unknown, the interval holds the subject part only and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Family-wise error rate the verdict holds the comparisons to (Holm's step-down correction).
ALPHA = 0.05


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds with its 95 % interval, standard error and degrees of freedom."""

    mean: float
    low: float
    high: float
    se: float
    df: float
    n_seeds: int
    #: The two parts of ``se ** 2``: the training seeds' (per-seed spread / n) and the subjects' (bootstrap).
    seed_var: float = 0.0
    subject_var: float = 0.0
    #: Degrees of freedom of the per-seed spread (n - 1, or the pooled rows' sum).
    seed_df: int = 0

    @property
    def detectable(self) -> float:
        """The smallest true difference this design finds 80 % of the time (two-sided 5 %, unadjusted)."""
        from scipy import stats

        return float((stats.t.ppf(0.975, self.df) + stats.t.ppf(0.80, self.df)) * self.se)

    @property
    def p_value(self) -> float:
        """Two-sided p-value of "the true mean is 0" (meaningful for differences)."""
        from scipy import stats

        if self.se <= 0 or math.isnan(self.se):
            return 1.0 if self.mean == 0 else 0.0
        return float(2 * stats.t.sf(abs(self.mean) / self.se, self.df))


@dataclass(frozen=True)
class ConfigurationRow:
    """One configuration (a tree and its cuts) in the per-tree table."""

    name: str
    cuts: list[int]
    splits: list[list[int]]
    runs: int
    seeds: list[int]
    values: list[float]
    estimate: Estimate
    delta: Estimate | None = None
    p_holm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        e, d = self.estimate, self.delta
        return {
            "name": self.name, "cuts": self.cuts, "splits": self.splits, "n": self.estimate.n_seeds,
            "runs": self.runs, "seeds": self.seeds, "values": self.values,
            "rank1_mean": e.mean, "rank1_ci95": [e.low, e.high],
            "delta_vs_reference": None if d is None else d.mean,
            "delta_ci95": None if d is None else [d.low, d.high],
            "p_value": None if d is None else self.p_holm,
            "p_value_unadjusted": None if d is None else d.p_value,
            "delta_detectable": None if d is None else d.detectable,
            **self.extra,
        }


def combine(per_seed: np.ndarray, resampled: np.ndarray, pooled: tuple[float, int] | None = None) -> Estimate:
    """The mean of ``per_seed [n]`` with an interval from seed spread plus a subject bootstrap.

    ``resampled [resamples, n]`` holds each seed's figure under shared subject resamples. ``pooled``
    (``(variance, degrees of freedom)``) replaces this row's own seed variance by one pooled over
    several rows, which assumes seeds scatter every configuration alike.
    """
    n = len(per_seed)
    mean = float(np.mean(per_seed))
    subject_var = float(np.nanvar(np.nanmean(resampled, axis=1), ddof=1)) if resampled.shape[0] > 1 else 0.0
    spread, seed_df = pooled if pooled is not None else (_spread(per_seed), n - 1)
    seed_var = spread / n if seed_df >= 1 else 0.0
    half, df = _t_half(seed_var, subject_var, seed_df)
    se = math.sqrt(seed_var + subject_var)
    return Estimate(mean, mean - half, mean + half, se, df, n, seed_var, subject_var, int(seed_df))


def _t_half(seed_var: float, subject_var: float, seed_df: float) -> tuple[float, float]:
    """The 95 % half-width of an estimate with these two variance parts, and its degrees of freedom.

    Welch-Satterthwaite: only the seed part is estimated from few values (``seed_df`` degrees of
    freedom); the subject part rests on many resamples and counts as known.
    """
    from scipy import stats

    df = (seed_var + subject_var) ** 2 * seed_df / seed_var**2 if seed_df >= 1 and seed_var > 0 else math.inf
    return float(stats.t.ppf(0.975, df)) * math.sqrt(seed_var + subject_var), df


def half_width(spread: float, subject_var: float, n_seeds: int, seed_df: float) -> float:
    """The 95 % half-width ``combine`` gives a mean over ``n_seeds`` with per-seed variance ``spread``."""
    return _t_half(spread / n_seeds, subject_var, seed_df)[0]


@dataclass(frozen=True)
class Sizing:
    """Where the paired intervals' width comes from, and how many seeds would bring them to ``target``."""

    n_seeds: int
    half_width: float
    seed_share: float
    subject_half_width: float
    target: float
    seeds_needed: int | None  # ``None``: more seeds alone cannot reach the target (the subjects' part is wider)

    def text(self) -> str:
        head = (f"the paired intervals are +-{self.half_width:.2f} points with {self.n_seeds} seeds, "
                f"{100 * self.seed_share:.0f} % of their variance from the training seeds and "
                f"{100 * (1 - self.seed_share):.0f} % from the subjects; ")
        if self.half_width <= self.target:
            return head + f"that is within the +-{self.target:g} asked"
        if self.seeds_needed is None:
            return head + (f"the subjects' part alone is +-{self.subject_half_width:.2f}, so seeds cannot bring them "
                           f"to +-{self.target:g}: evaluate on more subjects")
        return head + (f"about {self.seeds_needed} seeds per configuration would bring them to +-{self.target:g} "
                       "(`workbench study replicate FILE --all --seeds N` adds seeds)")


def sizing(rows: Sequence[ConfigurationRow], target: float = 1.0, max_seeds: int = 100) -> Sizing | None:
    """The typical paired comparison of ``rows``, projected to more seeds on the same subjects.

    The per-seed spread of the differences (pooled when the table pooled it), their degrees of freedom
    (growing with the seeds as they would) and the median subject part are held at what was measured;
    ``None`` with one seed, whose spread is unknown.
    """
    deltas = [r.delta for r in rows if r.delta is not None]
    if not deltas or min(d.n_seeds for d in deltas) < 2:
        return None
    n = min(d.n_seeds for d in deltas)
    spread = float(np.median([d.seed_var * d.n_seeds for d in deltas]))
    subject_var = float(np.median([d.subject_var for d in deltas]))
    seed_df = float(np.median([d.seed_df for d in deltas]))
    per_extra_seed = seed_df / (n - 1)  # pooled over k comparisons: k degrees of freedom per seed added
    now = half_width(spread, subject_var, n, seed_df)
    share = spread / n / (spread / n + subject_var) if spread + subject_var > 0 else 0.0
    floor = 1.96 * math.sqrt(subject_var)
    needed = None
    if floor < target:
        for m in range(n, max_seeds + 1):
            if half_width(spread, subject_var, m, per_extra_seed * (m - 1)) <= target:
                needed = m
                break
    return Sizing(n, now, share, floor, target, needed)


def _spread(values: np.ndarray) -> float:
    return float(np.var(values, ddof=1)) if len(values) >= 2 else 0.0


def pooled_spread(samples: Sequence[np.ndarray]) -> tuple[float, int]:
    """The seed variance pooled over rows, ``sum((n_i - 1) s_i^2) / sum(n_i - 1)``, and its degrees of freedom."""
    df = sum(len(v) - 1 for v in samples if len(v) >= 2)
    if df == 0:
        return 0.0, 0
    return sum((len(v) - 1) * _spread(v) for v in samples if len(v) >= 2) / df, df


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    order = np.argsort(p_values, kind="stable")
    m = len(p_values)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted.tolist()


def compare_configurations(
    groups: Mapping[str, Mapping[int, Sequence[Any]]],
    reference: str,
    *,
    key: str = "rank1",
    resamples: int = 1000,
    seed: int = 0,
    cuts: Mapping[str, list[int]] | None = None,
    splits: Mapping[str, list[list[int]]] | None = None,
    pool_seeds: bool = True,
    extra: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[ConfigurationRow]:
    """Per-configuration estimates and paired differences to ``reference``, Holm-corrected.

    With ``pool_seeds`` the seed variance is pooled over the configurations (and, for the differences,
    over the comparisons): with two or three seeds a row's own spread has one or two degrees of
    freedom, and pooling assumes only that seeds scatter every configuration alike.

    Args:
        groups: configuration name -> training seed -> evaluation results of that seed (several when
            trials with other parameters share the configuration: their figures are averaged per seed).
            Every result must cover the same subjects.
        reference: the configuration the others are compared with (its row has no delta).
        key: the summary figure compared.
        resamples: subject bootstrap resamples; seed: their seed.
        cuts, splits, extra: per configuration, carried into its row (``extra``: e.g. params, gflops).
    """
    from workbench.evaluation._uncertainty import subject_weights

    if reference not in groups:
        raise ValueError(f"reference {reference!r} has no runs; configurations with runs: {sorted(groups)}")
    subjects = _common_subjects(groups)
    weights = subject_weights(len(subjects), resamples, seed)
    figures = {name: _per_seed(by_seed, key, weights) for name, by_seed in groups.items()}
    rows = []
    ref_values, ref_boot = figures[reference]
    differences = {}
    for name, (values, boot) in figures.items():
        shared = sorted(set(values) & set(ref_values))
        if name != reference and shared:
            differences[name] = (np.array([values[s] - ref_values[s] for s in shared]),
                                 np.stack([boot[s] - ref_boot[s] for s in shared], axis=1))
    pooled_values = pooled_spread([np.array(list(v.values())) for v, _ in figures.values()]) if pool_seeds else None
    pooled_deltas = pooled_spread([d for d, _ in differences.values()]) if pool_seeds else None
    for name, (values, boot) in figures.items():
        estimate = combine(np.array(list(values.values())), np.stack(list(boot.values()), axis=1), pooled_values)
        delta = None
        if name in differences:
            delta = combine(*differences[name], pooled_deltas)
        runs = max(len(v) for v in groups[name].values())
        rows.append(ConfigurationRow(name, list((cuts or {}).get(name, [])), list((splits or {}).get(name, [])),
                                     runs, sorted(values), [values[s] for s in sorted(values)], estimate, delta,
                                     extra=dict((extra or {}).get(name, {}))))
    compared = [i for i, r in enumerate(rows) if r.delta is not None]
    adjusted = holm([rows[i].delta.p_value for i in compared])  # type: ignore[union-attr]
    for i, p in zip(compared, adjusted, strict=True):
        rows[i] = _with_holm(rows[i], p)
    return sorted(rows, key=lambda r: (r.name != reference, -r.estimate.mean))


def _with_holm(row: ConfigurationRow, p: float) -> ConfigurationRow:
    from dataclasses import replace

    return replace(row, p_holm=p)


def _common_subjects(groups: Mapping[str, Mapping[int, Sequence[Any]]]) -> tuple[str, ...]:
    first: tuple[str, ...] | None = None
    for name, by_seed in groups.items():
        for seed_key, results in by_seed.items():
            for result in results:
                subjects = result.subjects
                if subjects is None:
                    raise ValueError(f"{name}, seed {seed_key}: the result keeps no per-subject statistics")
                if first is None:
                    first = subjects
                elif subjects != first:
                    raise ValueError(f"{name}, seed {seed_key}: evaluated on other subjects than the rest; "
                                     "configurations are compared on the same subjects only")
    if first is None:
        raise ValueError("no results to compare")
    return first


def _per_seed(by_seed: Mapping[int, Sequence[Any]], key: str,
              weights: np.ndarray) -> tuple[dict[int, float], dict[int, np.ndarray]]:
    values: dict[int, float] = {}
    boot: dict[int, np.ndarray] = {}
    for seed_key, results in sorted(by_seed.items()):
        if not results:
            continue
        values[seed_key] = float(np.mean([r.summary()[key] for r in results]))
        boot[seed_key] = np.mean([r.resampled(weights)[key] for r in results], axis=0)
    return values, boot


def verdict(rows: Sequence[ConfigurationRow], reference: str, *, what: str = "tree") -> str:
    """The per-tree answer in plain words, e.g. "no tree differs from uniform-64 by more than the noise ..."."""
    compared = [r for r in rows if r.delta is not None]
    if not compared:
        return f"only {reference} has runs: nothing to compare"
    n_seeds = min(r.delta.n_seeds for r in compared if r.delta is not None)
    caveat = ("" if n_seeds >= 2 else
              " With one seed per configuration the intervals leave the training-seed noise out (up to several "
              "points at short training): set [budget] seeds >= 2 before trusting them.")
    detectable = float(np.median([r.delta.detectable for r in compared if r.delta is not None]))
    caveat = (f" At this size a true difference under about {detectable:.1f} points would usually go unseen "
              f"(80 % power, 5 % two-sided).") + caveat
    winners = [r for r in compared if r.p_holm is not None and r.p_holm < ALPHA]
    if not winners:
        best = max(compared, key=lambda r: abs(r.delta.mean))  # type: ignore[union-attr]
        d = best.delta
        assert d is not None
        return (f"No {what} differs from {reference} by more than the noise (largest difference {best.name} "
                f"{d.mean:+.2f} points, unadjusted 95 % interval {d.low:+.2f} to {d.high:+.2f}, Holm p = {best.p_holm:.2f}, "
                f"{n_seeds} seed(s)).{caveat}")
    parts = []
    for r in winners:
        d = r.delta
        assert d is not None
        direction = "beats" if d.mean > 0 else "trails"
        parts.append(f"{r.name} {direction} {reference} by {abs(d.mean):.2f} points (unadjusted 95 % interval {d.low:+.2f} "
                     f"to {d.high:+.2f}, Holm p = {r.p_holm:.3f})")
    rest = len(compared) - len(winners)
    tail = f"; the other {rest} cannot be told apart from it" if rest else ""
    return "; ".join(parts) + tail + "." + caveat


def margin_bounds(delta: Estimate, comparisons: int = 1) -> tuple[float, float]:
    """The two-sided 95 % interval of a paired difference, Bonferroni-widened over ``comparisons`` (with
    one it is ``(delta.low, delta.high)``): each end is a one-sided test at 2.5 % / ``comparisons``, the
    bound a claim "no worse than the reference by more than a margin" (or "worse by more") rests on."""
    from scipy import stats

    if comparisons <= 1:
        return delta.low, delta.high
    half = float(stats.t.ppf(1.0 - ALPHA / (2 * comparisons), delta.df) * delta.se)
    return delta.mean - half, delta.mean + half


def margin_verdict(rows: Sequence[ConfigurationRow], reference: str, margin: float) -> list[str]:
    """Each configuration against ``reference`` with a margin of ``margin`` points, a line each.

    A configuration *beats* the reference when the lower end of its paired interval lies above zero,
    *matches* it when that end lies above ``-margin`` (it is worse by less than the margin, if at all),
    *trails by more than the margin* when the upper end lies below ``-margin``, and is otherwise *not shown
    to match* (the interval allows both). With several configurations the ends are Bonferroni-widened,
    so that the chance of any false claim stays at 2.5 %.
    """
    if margin <= 0:
        raise ValueError(f"margin {margin}: give a positive number of points")
    compared = [r for r in rows if r.delta is not None]
    m = len(compared)
    adjusted = f", Bonferroni over {m}" if m > 1 else ""
    lines = []
    for r in compared:
        d = r.delta
        assert d is not None
        low, high = margin_bounds(d, m)
        where = f"(delta {d.mean:+.2f}, interval {low:+.2f} to {high:+.2f}{adjusted})"
        if low > 0:
            lines.append(f"{r.name} beats {reference} {where}")
        elif low > -margin:
            lines.append(f"{r.name} matches {reference} within {margin:g} points {where}")
        elif high < -margin:
            lines.append(f"{r.name} trails {reference} by more than {margin:g} points {where}")
        else:
            lines.append(f"{r.name} is not shown to match {reference} within {margin:g} points {where}")
    return lines


def format_rows(rows: Sequence[ConfigurationRow], key: str = "rank1") -> str:
    """The per-tree table as text."""
    width = max([len("tree"), *(len(r.name) for r in rows)])
    costs = any("params" in r.extra or "gflops" in r.extra for r in rows)
    hours = any("train_hours" in r.extra for r in rows)
    lines = [f"{'tree':<{width}} {'cuts':<8} {'n':>2} {key + ' mean [95 % CI]':<24} "
             f"{'delta vs reference [95 % CI]':<30} {'Holm p':>7}" + (f" {'params':>9} {'GFLOPs':>8}" if costs else "")
             + (f" {'train h':>7}" if hours else "")]
    for r in rows:
        e, d = r.estimate, r.delta
        delta = "reference" if d is None else f"{d.mean:+6.2f} [{d.low:+.2f}, {d.high:+.2f}]"
        p = "" if r.p_holm is None else f"{r.p_holm:.3f}"
        cost = ""
        if costs:
            params, gflops = r.extra.get("params"), r.extra.get("gflops")
            cost = (f" {'-' if params is None else f'{params:,.0f}':>9}"
                    f" {'-' if gflops is None else f'{gflops:.4g}':>8}")
        if hours:
            spent = r.extra.get("train_hours")
            cost += f" {'-' if spent is None else f'{spent:.2f}':>7}"
        lines.append(f"{r.name:<{width}} {'/'.join(map(str, r.cuts)):<8} {e.n_seeds:>2} "
                     f"{e.mean:6.2f} [{e.low:.2f}, {e.high:.2f}]{'':<3} {delta:<30} {p:>7}{cost}")
    return "\n".join(lines)
