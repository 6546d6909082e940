"""Chunked per-part distances against float64 references and small cases worked by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.evaluation import (
    GalleryIndex,
    _distance,
    iter_distances,
    nearest_neighbours,
    pairwise_distances,
    top_k_stable,
)


def reference_euclidean(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-part Euclidean distance averaged over parts, in float64 by brute force."""
    diff = x[:, None].astype(np.float64) - y[None].astype(np.float64)
    return np.sqrt((diff**2).sum(axis=2)).mean(axis=-1)


def reference_cosine(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """1 - per-part cosine similarity averaged over parts, in float64."""
    xn = x / np.linalg.norm(x.astype(np.float64), axis=1, keepdims=True)
    yn = y / np.linalg.norm(y.astype(np.float64), axis=1, keepdims=True)
    return 1.0 - np.einsum("icp,jcp->ijp", xn, yn).mean(axis=-1)


def test_hand_worked_two_parts() -> None:
    # probe part 0 = (3, 0), part 1 = (0, 0); gallery part 0 = (0, 4), part 1 = (0, 1)
    probe = np.array([[[3.0, 0.0], [0.0, 0.0]]], dtype=np.float32)
    gallery = np.array([[[0.0, 0.0], [4.0, 1.0]]], dtype=np.float32)
    # part 0: |(3,0) - (0,4)| = 5; part 1: |(0,0) - (0,1)| = 1; mean 3
    assert pairwise_distances(probe, gallery)[0, 0] == pytest.approx(3.0, abs=1e-6)
    # cosine: part 0 similarity 0, part 1 undefined for a zero vector -> treated as 0; mean 0 -> distance 1
    assert pairwise_distances(probe, gallery, "cosine")[0, 0] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk", [1, 7, 64])
def test_matches_reference(metric: str, chunk: int) -> None:
    rng = np.random.default_rng(1)
    probe = rng.normal(size=(23, 16, 5)).astype(np.float32)
    gallery = rng.normal(size=(31, 16, 5)).astype(np.float32)
    reference = reference_euclidean(probe, gallery) if metric == "euclidean" else reference_cosine(probe, gallery)
    got = pairwise_distances(probe, gallery, metric, chunk_size=chunk)
    assert got.shape == (23, 31) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference, atol=2e-5)


def test_gallery_tiles_cover_every_column(monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny work budget forces many gallery tiles and build blocks; the result must not change.
    rng = np.random.default_rng(2)
    probe = rng.normal(size=(9, 4, 3)).astype(np.float32)
    gallery = rng.normal(size=(50, 4, 3)).astype(np.float32)
    monkeypatch.setattr(_distance, "_WORK_ELEMENTS", 40)
    monkeypatch.setattr(_distance, "_BUILD_BLOCK", 7)
    np.testing.assert_allclose(pairwise_distances(probe, gallery), reference_euclidean(probe, gallery), atol=2e-5)


def test_precise_for_near_duplicates_far_from_the_origin() -> None:
    # A large common offset makes |x|^2 + |y|^2 - 2 x.y cancel catastrophically in float32 unless the
    # gallery is centred first; near-duplicates must still get their tiny distances right.
    rng = np.random.default_rng(3)
    base = rng.normal(size=(20, 128, 4)) + 300.0
    probe = (base + rng.normal(scale=1e-2, size=base.shape)).astype(np.float32)
    gallery = base.astype(np.float32)
    got = pairwise_distances(probe, gallery)
    reference = reference_euclidean(probe, gallery)
    np.testing.assert_allclose(np.diag(got), np.diag(reference), rtol=1e-2)
    assert (np.argmin(got, axis=1) == np.arange(20)).all()


def test_accepts_float16_memmap_and_tensor_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    probe = rng.normal(size=(6, 8, 3)).astype(np.float16)
    gallery = np.lib.format.open_memmap(tmp_path / "g.npy", mode="w+", dtype=np.float16, shape=(10, 8, 3))
    gallery[:] = rng.normal(size=(10, 8, 3))
    reference = reference_euclidean(probe.astype(np.float32), np.asarray(gallery, dtype=np.float32))
    np.testing.assert_allclose(pairwise_distances(probe, gallery), reference, atol=1e-4)
    np.testing.assert_allclose(pairwise_distances(torch.from_numpy(probe), torch.from_numpy(np.asarray(gallery))),
                               reference, atol=1e-4)


def test_float64_index_is_exact() -> None:
    rng = np.random.default_rng(5)
    probe, gallery = rng.normal(size=(5, 6, 2)), rng.normal(size=(7, 6, 2))
    index = GalleryIndex(gallery, dtype=torch.float64)
    np.testing.assert_allclose(index.distances(probe).numpy(), reference_euclidean(probe, gallery), atol=1e-12)


def test_iter_distances_yields_consecutive_chunks() -> None:
    rng = np.random.default_rng(6)
    probe, gallery = rng.normal(size=(10, 4, 2)), rng.normal(size=(3, 4, 2))
    chunks = list(iter_distances(probe, gallery, chunk_size=4))
    assert [start for start, _ in chunks] == [0, 4, 8]
    assert [d.shape for _, d in chunks] == [(4, 3), (4, 3), (2, 3)]


def test_nearest_neighbours_order_and_ties() -> None:
    # Gallery rows 1 and 3 are identical: the earlier one must rank first.
    gallery = np.array([[[5.0]], [[1.0]], [[9.0]], [[1.0]], [[2.0]]], dtype=np.float32)
    probe = np.array([[[1.2]], [[8.0]]], dtype=np.float32)
    idx, dist = nearest_neighbours(probe, gallery, k=3)
    assert idx.tolist() == [[1, 3, 4], [2, 0, 4]]
    np.testing.assert_allclose(dist, [[0.2, 0.2, 0.8], [1.0, 3.0, 6.0]], atol=1e-5)


def test_top_k_stable_with_ties_past_the_margin() -> None:
    # 40 equal values: more ties than topk's candidate margin, so the full stable fallback must kick in.
    dist = torch.ones(2, 60)
    dist[0, 50] = 0.0
    idx, values = top_k_stable(dist, 5)
    assert idx[0].tolist() == [50, 0, 1, 2, 3]
    assert idx[1].tolist() == [0, 1, 2, 3, 4]
    assert values[0, 0] == 0.0


def test_bad_inputs_raise_clear_errors() -> None:
    gallery = np.zeros((4, 8, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="metric='manhattan'"):
        pairwise_distances(gallery, gallery, "manhattan")
    with pytest.raises(ValueError, match=r"gallery: expected embeddings \[n, channels, parts\]"):
        GalleryIndex(np.zeros((4, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="floating-point"):
        GalleryIndex(np.zeros((4, 8, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="do not match the gallery"):
        pairwise_distances(np.zeros((2, 8, 4), dtype=np.float32), gallery)
    with pytest.raises(ValueError, match="empty gallery"):
        GalleryIndex(np.zeros((0, 8, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="k=9"):
        nearest_neighbours(gallery, gallery, k=9)
    with pytest.raises(ValueError, match="built for 'cosine'"):
        pairwise_distances(gallery, GalleryIndex(gallery + 1, "cosine"), "euclidean")
