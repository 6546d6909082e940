"""Benchmark: chunked evaluation (distances + rank-k / mAP / mINP) against a naive full-matrix pass.

Each measurement runs in a fresh subprocess (this file run as a script) so that its peak RSS is its
own. Embeddings are float16 and generated block by block from per-block seeds, so the probes can be
rebuilt from the gallery's seeds without keeping the gallery around.

Targets: on 2,000 x 2,000 x 73 parts x 128 channels the chunked pass agrees with the naive one and
is at least as fast while using a third of the memory or less; on 20,000 x 20,000 it finishes with a
peak RSS under 2 GB. On a default-synthetic-sized test set (20 subjects x 10 types x 11 views) the
1,000-resample subject bootstrap behind the summary's intervals adds at most 10 % to an evaluation.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from machine_info import cpu_name

if TYPE_CHECKING:
    from workbench.evaluation import EmbeddingSet, GalleryIndex

pytestmark = pytest.mark.benchmark

CHANNELS, PARTS = 128, 73
SEQS_PER_ID = 4
BLOCK = 1000
PEAK_LIMIT_MB = 2000.0


def _gallery_block(block: int, rows: int) -> np.ndarray:
    rng = np.random.default_rng([7, block])
    return rng.standard_normal((rows, CHANNELS, PARTS), dtype=np.float32)


def make_gallery(count: int) -> np.ndarray:
    """Gallery embeddings float16 ``[count, c, p]``, one seeded block at a time."""
    gallery = np.empty((count, CHANNELS, PARTS), dtype=np.float16)
    for b, start in enumerate(range(0, count, BLOCK)):
        rows = min(BLOCK, count - start)
        gallery[start : start + rows] = _gallery_block(b, rows)
    return gallery


def make_probe(count: int, noise: float) -> np.ndarray:
    """Probe ``i`` = gallery ``i`` + noise, float16, rebuilt from the gallery's block seeds."""
    probe = np.empty((count, CHANNELS, PARTS), dtype=np.float16)
    for b, start in enumerate(range(0, count, BLOCK)):
        rows = min(BLOCK, count - start)
        block = _gallery_block(b, rows)
        rng = np.random.default_rng([11, b])
        probe[start : start + rows] = block + noise * rng.standard_normal(block.shape, dtype=np.float32)
    return probe


def ids_for(count: int) -> np.ndarray:
    return np.array([f"{i // SEQS_PER_ID:05d}" for i in range(count)])


def naive(gallery: np.ndarray, probe: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    """OpenGait-style: the whole [parts, P, G] distance tensor, then a full argsort per probe."""
    import torch

    x = torch.from_numpy(probe.astype(np.float32)).permute(2, 0, 1)  # [p, P, c]
    y = torch.from_numpy(gallery.astype(np.float32)).permute(2, 0, 1)  # [p, G, c]
    dist = (x.square().sum(-1, keepdim=True) + y.square().sum(-1).unsqueeze(1) - 2 * torch.bmm(x, y.transpose(1, 2)))
    dist = dist.clamp(min=0).sqrt().mean(0).numpy()
    order = np.argsort(dist, axis=1, kind="stable")
    matches = ids[order] == ids[:, None]
    first, ap, inp = [], [], []
    for row in matches:
        hits = np.flatnonzero(row) + 1
        first.append(hits[0])
        ap.append(np.mean(np.arange(1, len(hits) + 1) / hits))
        inp.append(len(hits) / hits[-1])
    first_hit = np.array(first)
    metrics = {"rank1": 100 * float(np.mean(first_hit <= 1)), "rank5": 100 * float(np.mean(first_hit <= 5)),
               "map": 100 * float(np.mean(ap)), "minp": 100 * float(np.mean(inp))}
    return dist[:50], metrics


def chunked(gallery: np.ndarray | GalleryIndex, probe: np.ndarray, ids: np.ndarray
            ) -> tuple[np.ndarray, dict[str, float]]:
    """The workbench pass: a prepared gallery, probe chunks, per-probe metrics, no [P, G] matrix."""
    from workbench.evaluation import GalleryIndex, cmc, mean_ap, mean_inp, retrieval_scores

    gallery_index = gallery if isinstance(gallery, GalleryIndex) else GalleryIndex(gallery)
    first_rows = gallery_index.distances(probe[:50]).numpy()
    scores = retrieval_scores(probe, ids, gallery_index, ids, "euclidean").scores
    ranks = cmc(scores, (1, 5))
    return first_rows, {"rank1": ranks[1], "rank5": ranks[5], "map": mean_ap(scores), "minp": mean_inp(scores)}


def run(mode: str, count: int, out: Path) -> None:
    """Subprocess body: build the data, time the pass, write seconds, peak RSS and results to ``out``."""
    import torch

    torch.set_num_threads(2)
    ids = ids_for(count)
    if mode == "large":
        from workbench.evaluation import GalleryIndex

        # Prepare the gallery, drop the float16 copy, then build the probes: the peak stays bounded.
        gallery = make_gallery(count)
        start = time.perf_counter()
        index = GalleryIndex(gallery)
        index_seconds = time.perf_counter() - start
        del gallery
        probe = make_probe(count, noise=0.7)
        start = time.perf_counter()
        rows, metrics = chunked(index, probe, ids)
        seconds = index_seconds + time.perf_counter() - start
    else:
        gallery, probe = make_gallery(count), make_probe(count, noise=1.2)
        start = time.perf_counter()
        rows, metrics = (naive if mode == "naive" else chunked)(gallery, probe, ids)
        seconds = time.perf_counter() - start
    np.save(out.with_suffix(".npy"), rows)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out.write_text(json.dumps({"seconds": seconds, "peak_mb": peak_mb, "metrics": metrics}))


def measure(mode: str, count: int, tmp_path: Path, timeout: float) -> dict:
    """Run ``mode`` in a fresh interpreter; return its report plus the first distance rows."""
    out = tmp_path / f"{mode}-{count}.json"
    repo = Path(__file__).resolve().parents[2]
    command = [sys.executable, str(Path(__file__).resolve()), mode, str(count), str(out)]
    subprocess.run(command, check=True, timeout=timeout, cwd=repo, env={**os.environ, "OMP_NUM_THREADS": "2"})
    report = json.loads(out.read_text())
    report["rows"] = np.load(out.with_suffix(".npy"))
    return report


def test_chunked_matches_naive_faster_and_smaller(tmp_path: Path) -> None:
    count = 2000
    naive_report = measure("naive", count, tmp_path, timeout=600)
    chunked_report = measure("chunked", count, tmp_path, timeout=600)
    speed = naive_report["seconds"] / chunked_report["seconds"]
    memory = naive_report["peak_mb"] / chunked_report["peak_mb"]
    print(f"\n{count} x {count} x {PARTS} parts x {CHANNELS} ch: naive {naive_report['seconds']:.2f} s, "
          f"{naive_report['peak_mb']:.0f} MB peak; chunked {chunked_report['seconds']:.2f} s, "
          f"{chunked_report['peak_mb']:.0f} MB peak; speed ratio {speed:.2f}x, memory ratio {memory:.2f}x")
    print(f"metrics naive {naive_report['metrics']}\nmetrics chunked {chunked_report['metrics']}")
    np.testing.assert_allclose(chunked_report["rows"], naive_report["rows"], rtol=1e-4, atol=1e-4)
    # Float rounding may swap gallery sequences closer than ~1e-5: AP/INP may move in the 4th decimal.
    for name, value in naive_report["metrics"].items():
        assert chunked_report["metrics"][name] == pytest.approx(value, abs=0.01), name
    assert speed >= 1.0, f"chunked pass slower than the naive one ({speed:.2f}x)"
    assert memory >= 3.0, f"chunked pass should need a third of the naive memory or less ({memory:.2f}x)"


def test_20000_by_20000_under_2gb(tmp_path: Path) -> None:
    count = 20000
    report = measure("large", count, tmp_path, timeout=1800)
    probes_per_second = count / report["seconds"]
    print(f"\n{count} x {count} x {PARTS} parts x {CHANNELS} ch: {report['seconds']:.1f} s "
          f"({probes_per_second:.0f} probes/s), peak RSS {report['peak_mb']:.0f} MB "
          f"(limit {PEAK_LIMIT_MB:.0f} MB, ratio {report['peak_mb'] / PEAK_LIMIT_MB:.2f})")
    print(f"metrics {report['metrics']}")
    assert report["peak_mb"] < PEAK_LIMIT_MB
    # Probe i is gallery i plus noise: every probe's own gallery sequence must rank first.
    assert report["metrics"]["rank1"] == 100.0


def cpu_threads() -> str:
    """The CPU model and the threads torch may use."""
    import torch

    return f"{cpu_name()}, {torch.get_num_threads()} torch threads"


def synthetic_test_set(subjects: int = 20, views: int = 11, channels: int = 32, parts: int = 41) -> EmbeddingSet:
    """Subject centres plus noise, ``float32 [subjects * 10 types * views, channels, parts]``."""
    from workbench.evaluation import EmbeddingSet

    rng = np.random.default_rng(0)
    types = [f"nm-0{i}" for i in range(1, 7)] + ["bg-01", "bg-02", "cl-01", "cl-02"]
    rows = [(f"{s:03d}", t, f"{v * 18:03d}") for s in range(subjects) for t in types for v in range(views)]
    centres = rng.standard_normal((subjects, channels, parts), dtype=np.float32)
    noise = rng.standard_normal((len(rows), channels, parts), dtype=np.float32)
    embeddings = centres[[int(r[0]) for r in rows]] + 4.0 * noise
    return EmbeddingSet(embeddings, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def test_subject_bootstrap_adds_at_most_10_percent() -> None:
    """``evaluate(...).summary()`` with ``resamples=1000`` vs ``resamples=0``, best of 12 each, interleaved
    so that load from other processes hits both alike; the interval computation alone is printed too."""
    import dataclasses

    import torch

    from workbench.evaluation import evaluate

    torch.set_num_threads(2)
    data = synthetic_test_set()
    seconds: dict[str, list[float]] = {"plain": [], "bootstrap": [], "intervals": []}
    summary: dict[str, float] = {}
    for _ in range(12):
        start = time.perf_counter()
        result = evaluate(data, "synthetic", resamples=0)
        assert "rank1_ci_low" not in result.summary()
        seconds["plain"].append(time.perf_counter() - start)
        start = time.perf_counter()
        summary = evaluate(data, "synthetic", resamples=1000).summary()
        seconds["bootstrap"].append(time.perf_counter() - start)
        start = time.perf_counter()
        assert dataclasses.replace(result, resamples=1000).summary() == summary  # what resamples=1000 adds
        seconds["intervals"].append(time.perf_counter() - start)
    plain, boot, intervals = (min(seconds[k]) for k in ("plain", "bootstrap", "intervals"))
    ratio = boot / plain
    print(f"\nsynthetic protocol, {len(data)} sequences x 32 ch x 41 parts ({cpu_threads()}): evaluate + summary "
          f"{plain * 1000:.1f} ms with resamples=0, {boot * 1000:.1f} ms with resamples=1000: ratio {ratio:.3f} "
          f"(target <= 1.10); the intervals alone {intervals * 1000:.1f} ms ({intervals / plain:.1%}); rank-1 "
          f"{summary['rank1']:.2f} [{summary['rank1_ci_low']:.2f}, {summary['rank1_ci_high']:.2f}] over "
          f"{result.n_subjects} subjects")
    assert ratio <= 1.10


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
