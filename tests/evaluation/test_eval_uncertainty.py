"""Subject bootstrap intervals and paired comparisons: coverage and calibration on simulated test sets,
exact agreement with the headline figures, and the path through the protocols, ``save`` and ``load_result``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from workbench.evaluation import (
    CrossViewResult,
    EmbeddingSet,
    EvaluationResult,
    ProbeScores,
    RankResult,
    cmc,
    evaluate,
    has_saved_result,
    load_result,
    mean_ap,
    mean_inp,
    paired_difference,
    paired_results,
    subject_weights,
)

TRUE_MEAN = 0.85
CONCENTRATION = 10.0  # Beta(8.5, 1.5): per-subject hit rates spread with a standard deviation of ~0.11
VIEWS, PROBES = 11, 6
RESAMPLES = 500


def subject_rates(rng: np.random.Generator, subjects: int, mean: float = TRUE_MEAN) -> np.ndarray:
    return rng.beta(mean * CONCENTRATION, (1 - mean) * CONCENTRATION, size=subjects)


def cross_view_result(rng: np.random.Generator, rates: np.ndarray, seed: int = 0) -> CrossViewResult:
    """One condition, ``VIEWS`` views, ``PROBES`` probes per subject and view, hits drawn at each subject's rate."""
    shape = (len(rates), 1, VIEWS, VIEWS)
    total = np.full(shape, PROBES, dtype=np.int64)
    correct = rng.binomial(PROBES, rates.reshape(-1, 1, 1, 1), size=shape).astype(np.int64)
    return CrossViewResult(
        "sim", "euclidean", tuple(f"{v:03d}" for v in range(VIEWS)), ("NM",), correct.sum(0), total.sum(0),
        total.sum(0), subject_correct=correct, subject_total=total, subject_valid=total.copy(),
        subjects=tuple(f"{s:03d}" for s in range(len(rates))), resamples=RESAMPLES, seed=seed,
    )


def rank_result(rng: np.random.Generator, rates: np.ndarray, *, valid_only: bool, unmatched: float = 0.0,
                seed: int = 0) -> RankResult:
    """``VIEWS * PROBES`` probes per subject; a hit ranks first, a miss 2nd-9th; ``unmatched`` have no match."""
    per = VIEWS * PROBES
    hit = rng.random((len(rates), per)) < rates[:, None]
    first_hit = np.where(hit, 1, rng.integers(2, 10, size=hit.shape)).ravel()
    positives = rng.integers(1, 4, size=first_hit.shape)
    positives[rng.random(first_hit.shape) < unmatched] = 0
    first_hit[positives == 0] = 0
    ap = np.where(positives > 0, 1.0 / np.maximum(first_hit, 1), 0.0)
    inp = np.where(positives > 0, rng.uniform(0.1, 1.0, size=first_hit.shape), 0.0)
    subjects = np.repeat([f"s{s:03d}" for s in range(len(rates))], per)
    return RankResult.from_scores("sim", "euclidean", ProbeScores(first_hit, ap, inp, positives), subjects, (1, 5),
                                  valid_only=valid_only, with_map=valid_only, resamples=RESAMPLES, seed=seed)


def covers(result: EvaluationResult, truth: float) -> bool:
    summary = result.summary()
    return summary["rank1_ci_low"] <= truth <= summary["rank1_ci_high"]


# --- calibration on simulated test sets --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cross-view", "rank"])
def test_interval_covers_the_true_mean_about_95_percent(kind: str) -> None:
    # The percentile bootstrap undercovers a little with few subjects: ~91.5 % at 20 subjects, ~93 % at
    # 30 (2,000 simulated sets each). 30 subjects and 400 sets keep the 90 % bound > 2 standard errors away.
    rng = np.random.default_rng(42)
    sets, hits = 400, 0
    for trial in range(sets):
        rates = subject_rates(rng, 30)
        result = (cross_view_result(rng, rates, seed=trial) if kind == "cross-view"
                  else rank_result(rng, rates, valid_only=False, seed=trial))
        hits += covers(result, 100 * TRUE_MEAN)
    print(f"\n{kind}: the 95 % interval covered the true rank-1 in {hits} of {sets} simulated test sets")
    assert 0.90 <= hits / sets <= 0.99


def test_equal_models_give_uniform_p_values_and_deltas_around_zero() -> None:
    rng = np.random.default_rng(7)
    deltas, p_values = [], []
    for trial in range(200):
        rates = subject_rates(rng, 40)  # one difficulty per subject, shared by both models
        a, b = cross_view_result(rng, rates), cross_view_result(rng, rates)
        paired = paired_results(a, b, resamples=RESAMPLES, seed=trial)
        assert paired["ci_low"] <= paired["delta"] <= paired["ci_high"]
        deltas.append(paired["delta"])
        p_values.append(paired["p_value"])
    p = np.sort(p_values)
    ks = float(np.max(np.abs(p - np.arange(1, len(p) + 1) / len(p))))
    rejected = float(np.mean(p < 0.05))
    print(f"\nequal models: P(p < 0.05) = {rejected:.3f}, KS distance to uniform {ks:.3f}, "
          f"mean delta {np.mean(deltas):+.3f} (sd {np.std(deltas):.3f})")
    assert 0.01 <= rejected <= 0.10
    assert ks < 0.12
    assert abs(np.mean(deltas)) < 3 * np.std(deltas) / np.sqrt(len(deltas))


def test_identical_results_give_zero_delta_and_p_one() -> None:
    result = cross_view_result(np.random.default_rng(0), subject_rates(np.random.default_rng(1), 20))
    paired = paired_results(result, result, resamples=200)
    assert paired == {"delta": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": 1.0, "n_subjects": 20,
                      "resamples": 200}


def test_a_ten_point_difference_over_40_subjects_is_detected() -> None:
    rng = np.random.default_rng(3)
    detected = 0
    for trial in range(50):
        rates = subject_rates(rng, 40)
        # Model b misses more on every subject: its true mean rank-1 is 10 points lower.
        better, worse = cross_view_result(rng, rates), cross_view_result(rng, rates * (TRUE_MEAN - 0.1) / TRUE_MEAN)
        paired = paired_results(better, worse, resamples=RESAMPLES, seed=trial)
        detected += paired["p_value"] < 0.05 and paired["ci_low"] > 0
    print(f"\n10-point difference, 40 subjects: detected (p < 0.05) in {detected} of 50 simulations")
    assert detected >= 45


def test_intervals_shrink_with_more_subjects() -> None:
    rng = np.random.default_rng(5)

    def mean_width(subjects: int) -> float:
        widths = []
        for _ in range(30):
            summary = cross_view_result(rng, subject_rates(rng, subjects)).summary()
            widths.append(summary["rank1_ci_high"] - summary["rank1_ci_low"])
        return float(np.mean(widths))

    ratio = mean_width(80) / mean_width(20)
    print(f"\ninterval width, 80 vs 20 subjects: ratio {ratio:.2f} (1/2 expected)")
    assert 0.35 <= ratio <= 0.65


# --- exactness and determinism ------------------------------------------------------------------------------


def assert_ones_reproduce_summary(result: EvaluationResult) -> None:
    assert result.n_subjects is not None
    resampled = result.resampled(np.ones((1, result.n_subjects)))
    summary = result.summary()
    assert set(resampled) == {k for k in summary if not k.endswith(("_ci_low", "_ci_high"))}
    for key, values in resampled.items():
        np.testing.assert_array_equal(values[0], summary[key], err_msg=key)  # exact, NaN equal to NaN


def test_all_ones_weights_reproduce_the_cross_view_summary() -> None:
    rng = np.random.default_rng(0)
    result = cross_view_result(rng, subject_rates(rng, 12))
    assert_ones_reproduce_summary(result)
    # With probes lacking a gallery match (valid < total), reported both ways, and an empty cell.
    assert result.subject_correct is not None and result.subject_total is not None
    total = result.subject_total.copy()
    valid = total.copy()
    valid[:3, :, :, 2] = 0
    correct = np.minimum(result.subject_correct, valid)
    total[:, :, 4, 5] = valid[:, :, 4, 5] = correct[:, :, 4, 5] = 0
    excluded = CrossViewResult("oumvlp-like", "euclidean", result.views, ("NM",), correct.sum(0), total.sum(0),
                               valid.sum(0), report_excluded=True, subject_correct=correct, subject_total=total,
                               subject_valid=valid, subjects=result.subjects, resamples=100)
    assert "rank1_nm_excluded_ci_low" in excluded.summary()
    assert_ones_reproduce_summary(excluded)


@pytest.mark.parametrize("valid_only", [False, True], ids=["grew-like", "gait3d-like"])
def test_all_ones_weights_reproduce_the_rank_summary(valid_only: bool) -> None:
    rng = np.random.default_rng(1)
    result = rank_result(rng, subject_rates(rng, 15), valid_only=valid_only, unmatched=0.1)
    assert ("map" in result.summary()) == valid_only
    assert_ones_reproduce_summary(result)
    # The per-subject ratio estimators are the plain per-probe metrics.
    assert result.scores is not None
    assert result.ranks == pytest.approx(cmc(result.scores, (1, 5), valid_only=valid_only), rel=1e-12)
    if valid_only:
        assert result.map == pytest.approx(mean_ap(result.scores), rel=1e-12)
        assert result.minp == pytest.approx(mean_inp(result.scores), rel=1e-12)


def test_weights_are_deterministic_for_a_seed() -> None:
    weights = subject_weights(20, 300, seed=3)
    assert weights.shape == (300, 20) and weights.dtype == np.float64
    np.testing.assert_array_equal(weights.sum(1), 20.0)
    np.testing.assert_array_equal(weights, subject_weights(20, 300, seed=3))
    assert not np.array_equal(weights, subject_weights(20, 300, seed=4))
    rates = subject_rates(np.random.default_rng(9), 20)
    first = cross_view_result(np.random.default_rng(10), rates, seed=0)
    again = cross_view_result(np.random.default_rng(10), rates, seed=0)
    other = dataclasses.replace(first, seed=1)
    assert first.summary() == again.summary()
    assert first.summary()["rank1"] == other.summary()["rank1"]
    assert first.summary()["rank1_ci_low"] != other.summary()["rank1_ci_low"]
    with pytest.raises(ValueError, match="resamples: -1"):
        subject_weights(5, -1)


def test_results_without_subject_statistics_have_no_intervals() -> None:
    counts = np.full((1, 2, 2), 3)
    bare = CrossViewResult("t", "euclidean", ("a", "b"), ("NM",), counts, counts, counts)
    assert bare.summary() == {"rank1": 100.0, "rank1_nm": 100.0, "rank1_mean": 100.0}
    assert bare.n_subjects is None and "bootstrap" not in bare.table()
    with pytest.raises(ValueError, match="no per-subject statistics"):
        bare.resampled(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"result a .* no per-subject statistics"):
        paired_results(bare, bare)
    with pytest.raises(ValueError, match=r"subject_total.*subject_valid"):
        CrossViewResult("t", "euclidean", ("a", "b"), ("NM",), counts, counts, counts,
                        subject_correct=counts[None], subjects=("s",))
    with pytest.raises(ValueError, match="subject_correct: its sum over subjects differs from correct"):
        CrossViewResult("t", "euclidean", ("a", "b"), ("NM",), counts, counts, counts, subject_correct=counts[None] * 0,
                        subject_total=counts[None], subject_valid=counts[None], subjects=("s",))


# --- through the protocols ----------------------------------------------------------------------------------

TYPES = [f"nm-0{i}" for i in range(1, 7)] + ["bg-01", "bg-02", "cl-01", "cl-02"]


def noisy_set(noise: float, seed: int = 0, subjects: int = 8, views: int = 3) -> EmbeddingSet:
    """Subject centres plus per-sequence noise: a recogniser that is right most of the time, not always."""
    rng = np.random.default_rng(seed)
    rows = [(f"{s:03d}", t, f"{v * 90:03d}") for s in range(subjects) for t in TYPES for v in range(views)]
    centres = np.random.default_rng(100).standard_normal((subjects, 16, 4))
    emb = np.stack([centres[int(i)] + noise * rng.standard_normal((16, 4)) for i, _, _ in rows]).astype(np.float32)
    probe = [t == "nm-05" for _, t, _ in rows]
    return EmbeddingSet(emb, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], probe)


def as_grew(data: EmbeddingSet) -> EmbeddingSet:
    types = ["01" if t.startswith("nm") else "02" for t in data.types]
    return EmbeddingSet(data.embeddings, data.ids, types, [f"{k}" for k in data.keys])


@pytest.mark.parametrize("protocol", ["synthetic", "gait3d", "grew"])
def test_protocols_report_intervals_around_their_figures(protocol: str, tmp_path: Path) -> None:
    data = noisy_set(1.6)
    data = as_grew(data) if protocol == "grew" else data
    result = evaluate(data, protocol)
    summary = result.summary()
    assert result.n_subjects == 8
    for key in result.resampled(np.ones((1, 8))):
        assert summary[f"{key}_ci_low"] <= summary[key] <= summary[f"{key}_ci_high"], key
    assert "bootstrap over 8 test subjects (gallery fixed)" in result.table()
    assert_ones_reproduce_summary(result)
    assert "_ci_" not in "".join(evaluate(data, protocol, resamples=0).summary())
    with pytest.raises(ValueError, match="resamples: -5; give 0"):
        evaluate(data, protocol, resamples=-5)
    # save -> load_result gives the same figures, intervals and resampled figures.
    result.save(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text())["n_subjects"] == 8
    loaded = load_result(tmp_path)
    assert type(loaded) is type(result) and loaded.summary() == summary
    weights = subject_weights(8, 50, seed=11)
    for key, values in result.resampled(weights).items():
        np.testing.assert_array_equal(loaded.resampled(weights)[key], values)


def test_paired_difference_on_embedding_sets() -> None:
    good, poor = noisy_set(1.2, seed=0), noisy_set(2.2, seed=1)
    same = paired_difference(good, good, "synthetic", resamples=300)
    assert same["delta"] == 0.0 and same["p_value"] == 1.0 and same["n_subjects"] == 8
    paired = paired_difference(good, poor, "synthetic", resamples=300)
    expected = evaluate(good, "synthetic").summary()["rank1"] - evaluate(poor, "synthetic").summary()["rank1"]
    assert paired["delta"] == expected > 0 and paired["ci_low"] <= paired["delta"] <= paired["ci_high"]
    map_delta = paired_difference(good, poor, "gait3d", resamples=100, key="map")
    assert map_delta["delta"] == evaluate(good, "gait3d").summary()["map"] - evaluate(poor, "gait3d").summary()["map"]
    # Row order does not matter: the sets are compared after sorting by id-type-view.
    shuffled = good.select(np.random.default_rng(0).permutation(len(good)))
    assert paired_difference(shuffled, good, "synthetic", resamples=50)["delta"] == pytest.approx(0.0, abs=1e-9)


def test_paired_difference_names_what_differs() -> None:
    data = noisy_set(1.6)
    with pytest.raises(ValueError, match="a has 240 sequences, b 239"):
        paired_difference(data, data.select(np.arange(1, len(data))), "synthetic")
    views = data.views.copy()
    views[5] = "045"
    moved = EmbeddingSet(data.embeddings, data.ids, data.types, views, data.probe)
    with pytest.raises(ValueError, match="views differ"):
        paired_difference(data, moved, "synthetic")
    flags = EmbeddingSet(data.embeddings, data.ids, data.types, data.views, ~np.asarray(data.probe))
    with pytest.raises(ValueError, match="probe flags"):
        paired_difference(data, flags, "gait3d")
    with pytest.raises(ValueError, match="key 'map'"):
        paired_difference(data, data, "synthetic", key="map")
    fewer = data.select(data.ids != "007")
    with pytest.raises(ValueError, match=r"only in a: \['007'\]"):
        paired_results(evaluate(data, "synthetic", resamples=0), evaluate(fewer, "synthetic", resamples=0))


def test_load_result_names_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"summary\.json: not found"):
        load_result(tmp_path)
    result = evaluate(noisy_set(1.6), "synthetic", resamples=20)
    result.save(tmp_path)
    (tmp_path / "subject_scores.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"subject_scores\.npz: not a readable \.npz"):
        load_result(tmp_path)
    result.save(tmp_path)
    payload = json.loads((tmp_path / "summary.json").read_text())
    payload["summary"]["rank1"] = 12.5
    (tmp_path / "summary.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match=r"rank1 is 12\.5, but subject_scores\.npz gives"):
        load_result(tmp_path)
    np.savez(tmp_path / "subject_scores.npz", kind=np.asarray("cross-view"), views=np.asarray(["000"]))
    with pytest.raises(ValueError, match=r"subject_scores\.npz: missing arrays \['conditions'"):
        load_result(tmp_path)


def test_save_killed_while_writing_scores_leaves_no_saved_result(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The test step reuses a folder holding the scores file as a finished evaluation: a save cut short
    must leave none (nor a half-written file under that name), and the next save completes normally."""
    result = evaluate(noisy_set(1.6), "synthetic", resamples=20)
    real = np.savez_compressed

    def cut_short(file: object, **arrays: np.ndarray) -> None:
        file.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", cut_short)
    with pytest.raises(KeyboardInterrupt):
        result.save(tmp_path)
    assert not has_saved_result(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.txt", "summary.json"]
    monkeypatch.setattr(np, "savez_compressed", real)
    result.save(tmp_path)
    assert has_saved_result(tmp_path) and load_result(tmp_path).summary() == result.summary()
