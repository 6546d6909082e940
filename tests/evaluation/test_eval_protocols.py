"""Protocols on hand-made embeddings whose results can be worked out by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.evaluation import (
    CrossViewResult,
    EmbeddingSet,
    Protocol,
    RankResult,
    SyntheticProtocol,
    evaluate,
    get_protocol,
    list_protocols,
    register_protocol,
)

CASIA_TYPES = [f"nm-0{i}" for i in range(1, 7)] + ["bg-01", "bg-02", "cl-01", "cl-02"]
CASIA_VIEWS = [f"{v:03d}" for v in range(0, 181, 18)]


def headline(summary: dict[str, float]) -> dict[str, float]:
    """The summary without its ``_ci_low``/``_ci_high`` interval keys."""
    return {k: v for k, v in summary.items() if not k.endswith(("_ci_low", "_ci_high"))}


def one_hot_set(ids: list[str], types: list[str], views: list[str], width: int | None = None) -> EmbeddingSet:
    """Every sequence embedded as 10 x one-hot(id) in one part: a perfect recogniser."""
    rows = [(i, t, v) for i in ids for t in types for v in views]
    width = width or len(ids)
    emb = np.zeros((len(rows), width, 1), dtype=np.float32)
    for k, (identity, _, _) in enumerate(rows):
        emb[k, ids.index(identity), 0] = 10.0
    return EmbeddingSet(emb, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def test_registry_lists_every_protocol() -> None:
    assert list_protocols() == ["casia-b", "gait3d", "grew", "oumvlp", "synthetic"]
    with pytest.raises(ValueError, match=r"unknown protocol 'casia'.*casia-b"):
        get_protocol("casia")
    with pytest.raises(ValueError, match="already registered"):
        register_protocol("grew")(lambda: get_protocol("grew"))
    assert isinstance(get_protocol("casia-b"), Protocol)


def test_casia_b_perfect_embeddings_score_100() -> None:
    data = one_hot_set(["001", "002", "003"], CASIA_TYPES, CASIA_VIEWS)
    result = evaluate(data, "casia-b")
    assert isinstance(result, CrossViewResult)
    summary = result.summary()
    assert headline(summary) == {"rank1": 100.0, "rank1_nm": 100.0, "rank1_bg": 100.0, "rank1_cl": 100.0,
                                 "rank1_mean": 100.0}
    assert summary["rank1_ci_low"] == summary["rank1_ci_high"] == 100.0  # every subject is perfect
    assert result.views == tuple(CASIA_VIEWS)
    assert np.isnan(np.diag(result.accuracy("NM"))).all()


def test_casia_b_one_wrong_probe_hand_worked() -> None:
    data = one_hot_set(["001", "002", "003"], CASIA_TYPES, CASIA_VIEWS)
    # Probe 001/bg-01/036 now looks exactly like subject 002: it misses against every gallery view.
    wrong = np.flatnonzero((data.ids == "001") & (data.types == "bg-01") & (data.views == "036"))[0]
    data.embeddings[wrong] = 0.0
    data.embeddings[wrong, 1, 0] = 10.0
    result = evaluate(data, "casia-b")
    # 6 BG probes per view (3 ids x bg-01/02): row 036 is 5/6 in each of its 10 gallery views.
    acc = result.accuracy("BG")
    row = CASIA_VIEWS.index("036")
    off_diagonal = np.delete(acc[row], row)
    np.testing.assert_allclose(off_diagonal, 500 / 6)
    per_view = result.per_probe_view("BG")
    assert per_view[row] == pytest.approx(500 / 6)
    assert result.summary()["rank1_bg"] == pytest.approx((10 * 100 + 500 / 6) / 11)
    assert result.summary()["rank1_nm"] == 100.0
    assert result.summary()["rank1_mean"] == pytest.approx((200 + (1000 + 500 / 6) / 11) / 3)
    assert result.summary()["rank1"] == result.summary()["rank1_mean"]


def test_cross_view_averaging_excludes_the_diagonal() -> None:
    # 3 views; the diagonal is all wrong and must not count. Row means: (50+100)/2, (100+0)/2, (50+50)/2.
    correct = np.array([[[0, 1, 2], [2, 0, 0], [1, 1, 0]]])
    total = np.full((1, 3, 3), 2)
    result = CrossViewResult("t", "euclidean", ("a", "b", "c"), ("NM",), correct, total, total)
    np.testing.assert_allclose(result.per_probe_view("NM"), [75.0, 50.0, 50.0])
    assert result.mean("NM") == pytest.approx(175 / 3)
    included = CrossViewResult("t", "euclidean", ("a", "b", "c"), ("NM",), correct, total, total,
                               exclude_identical=False)
    assert included.mean("NM") == pytest.approx(100 * 7 / 18)


def test_oumvlp_reports_probes_without_gallery_both_ways() -> None:
    views = ["000", "090"]
    data = one_hot_set(["1", "2", "3", "4"], ["00", "01"], views)
    # Subject 4 has no gallery (type 01) sequence at all: a miss when counted, left out when excluded.
    keep = ~((data.ids == "4") & (data.types == "01"))
    result = evaluate(data.select(keep), "oumvlp")
    summary = result.summary()
    assert summary["rank1_nm"] == pytest.approx(75.0)
    assert summary["rank1_nm_excluded"] == pytest.approx(100.0)
    assert summary["rank1_mean_excluded"] == pytest.approx(100.0)
    assert summary["rank1"] == pytest.approx(75.0) and summary["rank1_excluded"] == pytest.approx(100.0)
    assert "excluded" in result.table()


def test_oumvlp_exclusion_is_per_gallery_view() -> None:
    data = one_hot_set(["1", "2"], ["00", "01"], ["000", "090"])
    # Subject 2's gallery exists only at view 000: its probes at 090 vs gallery 090 are invalid.
    keep = ~((data.ids == "2") & (data.types == "01") & (data.views == "090"))
    result = evaluate(data.select(keep), "oumvlp")
    assert isinstance(result, CrossViewResult)
    # Cell (probe 000, gallery 090): 2 probes, 1 valid, 1 correct.
    assert result.accuracy("NM")[0, 1] == pytest.approx(50.0)
    assert result.accuracy("NM", exclude_invalid=True)[0, 1] == pytest.approx(100.0)
    assert result.accuracy("NM")[1, 0] == pytest.approx(100.0)


def test_grew_ranks_and_submission_csv(tmp_path: Path) -> None:
    # One part, one channel: distances are plain differences, ranks can be read off the number line.
    gallery_values = {"a": 0.0, "b": 1.0, "c": 2.0, "d": 3.0}
    probes = {"a": 0.1, "b": 2.4, "x": 0.9}
    emb, ids, types, views = [], [], [], []
    for identity, value in gallery_values.items():
        emb.append(value), ids.append(identity), types.append("01"), views.append(f"g{identity}")
    for identity, value in probes.items():
        emb.append(value), ids.append(identity), types.append("02"), views.append(f"video-{identity}")
    data = EmbeddingSet(np.array(emb, dtype=np.float32).reshape(-1, 1, 1), ids, types, views)
    result = evaluate(data, "grew")
    assert isinstance(result, RankResult)
    # a: nearest a (rank 1). b at 2.4: order c(0.4), d(0.6), b(1.4) -> rank 3. x: not in gallery -> miss.
    assert result.ranks == pytest.approx({1: 100 / 3, 5: 200 / 3, 10: 200 / 3, 20: 200 / 3})
    paths = result.save(tmp_path)
    lines = (tmp_path / "submission.csv").read_text().splitlines()
    assert lines[0] == "videoId,rank1,rank2,rank3,rank4"  # only 4 gallery sequences to rank
    assert lines[1] == "video-a,a,b,c,d"
    assert lines[2] == "video-b,c,d,b,a"
    assert lines[3] == "video-x,b,a,c,d"
    assert tmp_path / "summary.json" in paths


def test_gait3d_map_minp_and_skipped_probes() -> None:
    # Gallery on a number line: p@0, q@1, p@2, r@5; probes p@0.4 (gallery order p q p r) and s (no match).
    emb = np.array([0.0, 1.0, 2.0, 5.0, 0.4, 9.0], dtype=np.float32).reshape(-1, 1, 1)
    ids = ["p", "q", "p", "r", "p", "s"]
    probe = [False, False, False, False, True, True]
    data = EmbeddingSet(emb, ids, ["c"] * 6, [str(i) for i in range(6)], probe)
    result = evaluate(data, "gait3d")
    assert isinstance(result, RankResult)
    # Positives of probe p at ranks 1 and 3: AP = (1 + 2/3)/2, INP = 2/3; probe s is skipped.
    assert result.n_probes == 2 and result.n_evaluated == 1 and result.n_skipped == 1
    summary = result.summary()
    assert summary["rank1"] == 100.0
    assert summary["map"] == pytest.approx(100 * 5 / 6)
    assert summary["minp"] == pytest.approx(100 * 2 / 3)
    assert "1 without a gallery match skipped" in result.table()


def test_gait3d_needs_probe_flags() -> None:
    data = one_hot_set(["1", "2"], ["a"], ["v"])
    with pytest.raises(ValueError, match="PROBE_SET"):
        evaluate(data, "gait3d")


def test_synthetic_layout_adapts_to_types() -> None:
    proto = SyntheticProtocol()
    six = proto.layout(CASIA_TYPES)
    assert six.gallery_types == ("nm-01", "nm-02", "nm-03", "nm-04")
    assert dict(six.conditions) == {"NM": ("nm-05", "nm-06"), "BG": ("bg-01", "bg-02"), "CL": ("cl-01", "cl-02")}
    four = proto.layout(["nm-01", "nm-02", "nm-03", "nm-04", "cl-01"])
    assert four.gallery_types == ("nm-01", "nm-02") and dict(four.conditions) == {"NM": ("nm-03", "nm-04"),
                                                                                   "CL": ("cl-01",)}
    with pytest.raises(ValueError, match="no nm-NN sequences"):
        proto.layout(["bg-01", "cl-01"])


def test_synthetic_single_view_keeps_identical_view() -> None:
    data = one_hot_set(["1", "2", "3"], ["nm-01", "nm-02", "nm-03", "bg-01"], ["090"])
    result = evaluate(data, "synthetic")
    assert isinstance(result, CrossViewResult)
    assert not result.exclude_identical
    assert headline(result.summary()) == {"rank1": 100.0, "rank1_nm": 100.0, "rank1_bg": 100.0, "rank1_mean": 100.0}


def test_cosine_metric_and_missing_condition_warning() -> None:
    data = one_hot_set(["1", "2"], ["nm-01", "nm-02", "nm-03", "nm-04", "nm-05"], ["000", "090"])
    with pytest.warns(UserWarning) as record:
        result = evaluate(data, "casia-b", metric="cosine")
    messages = " ".join(str(w.message) for w in record)
    assert "condition BG is left out" in messages and "condition CL is left out" in messages
    assert headline(result.summary()) == {"rank1": 100.0, "rank1_nm": 100.0, "rank1_mean": 100.0}
    assert result.metric == "cosine" and "cosine distance" in result.table()


def test_wrong_dataset_and_bad_embeddings_are_reported() -> None:
    data = one_hot_set(["1", "2"], ["00", "01"], ["000"])
    with pytest.raises(ValueError, match="no gallery sequences of types nm-01"):
        evaluate(data, "casia-b")
    data.embeddings[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite.*1-00-000"):
        evaluate(data, "oumvlp")
    with pytest.raises(ValueError, match="3 entries for 2 embeddings"):
        EmbeddingSet(np.zeros((2, 1, 1), np.float32), ["a", "b", "c"], ["t", "t"], ["v", "v"])


def test_save_writes_summary_csv_and_heatmap(tmp_path: Path) -> None:
    data = one_hot_set(["001", "002"], CASIA_TYPES, CASIA_VIEWS[:4])
    result = evaluate(data, "casia-b")
    paths = result.save(tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == ["rank1_views.csv", "rank1_views.png", "results.txt", "subject_scores.npz", "summary.json"]
    payload = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert payload["protocol"] == "casia-b" and payload["summary"]["rank1_mean"] == 100.0
    assert payload["primary_metric"] == "rank1" and result.primary() == 100.0
    rows = (tmp_path / "out" / "rank1_views.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 4 * 4
    with Image.open(tmp_path / "out" / "rank1_views.png") as image:
        assert image.format == "PNG" and image.size[0] > image.size[1] > 100


def test_embedding_set_round_trip(tmp_path: Path) -> None:
    data = EmbeddingSet(np.ones((2, 3, 4), np.float32), ["a", "b"], ["t1", "t2"], ["v", "w"], [True, False])
    loaded = EmbeddingSet.load(data.save(tmp_path / "emb.npz"))
    np.testing.assert_array_equal(loaded.embeddings, data.embeddings)
    assert loaded.ids.tolist() == ["a", "b"] and loaded.probe is not None and loaded.probe.tolist() == [True, False]
    assert loaded.keys == ["a-t1-v", "b-t2-w"]
