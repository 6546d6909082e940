"""Row descriptors: shapes, phase invariance, streaming, activations and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.hierarchy import (
    ActivationStats,
    DescriptorStats,
    RowCoherence,
    RowSpectrum,
    create_descriptor,
    descriptor_summaries,
    list_descriptors,
    map_rows,
)


def walker(frames: int = 40, phase: float = 0.0, h: int = 32, w: int = 32, period: float = 20.0) -> np.ndarray:
    """A toy walker: a still torso over two legs whose width swings with the gait cycle."""
    seq = np.zeros((frames, h, w), dtype=np.uint8)
    t = np.arange(frames)
    swing = np.sin(2 * np.pi * (t / period + phase))
    seq[:, 2 : h // 2, 12:20] = 255
    for i in range(frames):
        for r in range(h // 2, h):
            reach = round((r - h // 2) * 0.4 * swing[i])
            seq[i, r, 14 - abs(reach) - 1 : 18 + abs(reach) + 1] = 255
    return seq


def test_registry_lists_documented_descriptors() -> None:
    names = list_descriptors()
    assert {"row-articulation", "row-coherence", "row-spectrum", "row-stats", "activation-stats"} <= set(names)
    assert all(descriptor_summaries()[n].startswith(n) for n in names)
    with pytest.raises(ValueError, match="unknown descriptor 'nope'; available"):
        create_descriptor("nope")


@pytest.mark.parametrize("name", ["row-articulation", "row-coherence", "row-spectrum", "row-stats"])
def test_silhouette_descriptors_ignore_the_walks_phase(name: str) -> None:
    descriptor = create_descriptor(name, n_rows=32)
    a = descriptor.describe(walker(phase=0.0))
    b = descriptor.describe(walker(phase=0.5))
    assert a.shape == (32, len(descriptor.feature_names()))
    assert np.allclose(a, b, atol=0.05)


def test_spectrum_bands_do_not_depend_on_sequence_length() -> None:
    d = RowSpectrum(n_rows=32)
    short, long = d.describe(walker(frames=40)), d.describe(walker(frames=80))
    assert np.allclose(short, long, atol=0.02)


def test_leg_rows_move_and_torso_rows_do_not() -> None:
    x = RowSpectrum(n_rows=32).describe(walker())
    bands = [i for i, n in enumerate(RowSpectrum().feature_names()) if n.startswith("left:band")]
    assert x[28, bands].sum() > 10 * x[8, bands].sum()


def test_rows_are_resampled_to_n_rows() -> None:
    x = RowSpectrum(n_rows=16).describe(walker(h=32))
    assert x.shape[0] == 16
    coherence = RowCoherence(n_rows=16)
    assert coherence.describe(walker(h=64, w=64)).shape == (16, 5 * 16)
    assert np.allclose(map_rows(np.arange(4.0)[:, None], 2)[:, 0], [0.5, 2.5])


def test_streaming_equals_the_mean_of_per_sequence_descriptors() -> None:
    d = create_descriptor("row-stats", n_rows=32)
    seqs = [walker(phase=p, frames=30 + 5 * i) for i, p in enumerate([0.0, 0.2, 0.7, 0.9])]
    stats = d.accumulate(iter(seqs), subjects=["a", "a", "b", "c"])
    expected = np.mean([d.describe(s) for s in seqs], axis=0)
    assert np.allclose(stats.matrix(), expected)
    assert stats.subjects == ["a", "b", "c"] and stats.counts.tolist() == [2, 1, 1]
    # weights resample subjects: only subject b
    assert np.allclose(stats.matrix(np.array([0.0, 1.0, 0.0])), d.describe(seqs[2]))


def test_constant_rows_give_finite_features() -> None:
    seq = np.zeros((20, 16, 16), dtype=np.uint8)
    for name in ("row-articulation", "row-coherence", "row-spectrum", "row-stats"):
        assert np.all(np.isfinite(create_descriptor(name).describe(seq)))


def test_short_sequences_are_skipped_and_counted() -> None:
    stats = DescriptorStats(32, RowSpectrum().feature_names())
    out = RowSpectrum(n_rows=32).accumulate([walker()[:1], walker()], stats=stats)
    assert out.n_sequences == 1 and out.n_skipped == 1


def test_bad_inputs_are_explained() -> None:
    with pytest.raises(ValueError, match=r"\[frames, h, w\]"):
        RowSpectrum().describe(np.zeros((16, 16), dtype=np.uint8))
    with pytest.raises(ValueError, match="divide uint8 frames by 255"):
        RowSpectrum().describe(np.full((4, 8, 8), 255.0))
    with pytest.raises(ValueError, match="input was empty"):
        RowSpectrum().accumulate([])
    with pytest.raises(ValueError, match="subjects ran out"):
        RowSpectrum().accumulate([walker(), walker()], subjects=["a"])


def test_activation_stats_map_stage_height_to_descriptor_rows() -> None:
    rng = np.random.default_rng(0)
    d = ActivationStats(n_rows=64)
    acts = rng.normal(size=(8, 10, 16, 11)).astype(np.float32)
    acts[:, :, 8:] *= 5.0  # lower half moves more
    x = d.describe(acts)
    assert x.shape == (64, 3 * 8) and len(d.feature_names()) == 24
    std_cols = slice(8, 16)
    assert x[40:, std_cols].mean() > 3 * x[:24, std_cols].mean()
    # each of the 16 stage rows covers 4 descriptor rows
    assert np.allclose(x[0], x[3])
    stats = d.accumulate([acts, acts * 2], subjects=["s1", "s2"])
    assert stats.n_subjects == 2 and stats.matrix().shape == (64, 24)
    with pytest.raises(ValueError, match="channels"):
        d.describe(rng.normal(size=(4, 10, 16, 11)))
    with pytest.raises(ValueError, match=r"\[c, s, h, w\]"):
        d.describe(acts[0])
