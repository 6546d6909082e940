"""Streaming row descriptors keep memory flat in the number of sequences (tracemalloc peak ratio)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest

from workbench.hierarchy import create_descriptor

SUBJECTS = 50
TARGET_RATIO = 1.2


def random_blobs(count: int, seed: int = 0) -> Iterator[np.ndarray]:
    """``count`` small random-blob sequences ``uint8 [12, 32, 22]``, generated one at a time."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:22]
    for _ in range(count):
        cy, cx = rng.uniform(8, 24), rng.uniform(6, 16)
        radius = rng.uniform(4, 9) + np.sin(np.arange(12)[:, None, None] * rng.uniform(0.2, 0.8)) * 2
        yield (((yy - cy) ** 2 + (xx - cx) ** 2 < radius**2) * 255).astype(np.uint8)


def peak_bytes(name: str, count: int) -> int:
    descriptor = create_descriptor(name, n_rows=32)
    subjects = (f"s{i % SUBJECTS}" for i in range(count))
    tracemalloc.start()
    stats = descriptor.accumulate(random_blobs(count), subjects)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert stats.n_sequences == count
    return peak


@pytest.mark.benchmark
@pytest.mark.parametrize("name", ["row-articulation", "row-coherence", "row-spectrum", "row-identity"])
def test_peak_memory_is_flat_from_1k_to_20k_sequences(name: str) -> None:
    small, large = peak_bytes(name, 1_000), peak_bytes(name, 20_000)
    ratio = large / small
    print(f"\n{name}: peak {small / 1e6:.2f} MB at 1k sequences, {large / 1e6:.2f} MB at 20k: ratio {ratio:.3f} "
          f"(target <= {TARGET_RATIO})")
    assert ratio <= TARGET_RATIO
