"""Batched inference over sequences of different lengths: one padded batch vs one sequence at a time.

The public code refuses more than one sequence per GPU at test time; the workbench pads length-sorted
batches and passes ``seqL``. This measures the user's path, ``extract_embeddings``, on the CASIA-B
preset: 24 sequences of 50-90 frames (64x64 silhouettes cut to 64x44), batches of 8 against batches
of 1, on CUDA when there is one (fp32) and otherwise on 2 CPU threads. Both must give the same
embeddings. Target: batching costs no throughput on CPU (ratio >= 0.9; before the padded path kept
the channels-last layout it measured 0.62-0.65) and at least doubles it on GPU.

Where the hardware has bf16 units (CUDA, or a CPU with AVX512-BF16 or AMX), a second test times the
same padded batches under ``amp="bf16"`` (``workbench evaluate --amp bf16``) against fp32: it must be
faster, with embeddings pointing the same way to bf16 rounding (cosine >= 0.99 per sequence and part).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch

from workbench.data import ArraySource, SequenceRecord
from workbench.evaluation import extract_embeddings
from workbench.models import create_model

pytestmark = pytest.mark.benchmark

SEQUENCES, MIN_FRAMES, MAX_FRAMES = 24, 50, 90
BATCH = 8
THREADS = 2


def random_walks() -> ArraySource:
    """Seeded binary silhouettes with a spread of lengths, held in memory."""
    rng = np.random.default_rng(5)
    lengths = rng.integers(MIN_FRAMES, MAX_FRAMES + 1, SEQUENCES)
    sequences = [(rng.random((int(n), 64, 64)) > 0.6).astype(np.uint8) * 255 for n in lengths]
    records = [SequenceRecord(f"{i:03d}", "nm-01", "090", (Path(f"seq{i}.pkl"),)) for i in range(SEQUENCES)]
    return ArraySource(sequences, records, name="random walks")


def test_padded_batches_are_at_least_as_fast_as_one_at_a_time() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = create_model("hstl-casia-b").to(device).eval()
    source = random_walks()
    frames = sum(len(s) for s in source.sequences)
    extract_embeddings(model, source, batch_size=BATCH, progress=False)  # warm-up
    seconds, embeddings = {}, {}
    for size in (1, BATCH, 1, BATCH):  # alternating: background load hits both sides alike
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = extract_embeddings(model, source, batch_size=size, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - start
        seconds[size] = min(seconds.get(size, float("inf")), elapsed)
        embeddings[size] = result.embeddings
    np.testing.assert_allclose(embeddings[BATCH], embeddings[1], atol=1e-4, rtol=1e-4)
    ratio = seconds[1] / seconds[BATCH]
    target = 2.0 if device.type == "cuda" else 0.9
    print(f"\nCASIA-B HSTL inference on {device} ({THREADS} threads on CPU), {SEQUENCES} sequences of "
          f"{MIN_FRAMES}-{MAX_FRAMES} frames ({frames} frames)")
    for size in (1, BATCH):
        print(f"  batch {size}: {seconds[size]:.2f} s, {SEQUENCES / seconds[size]:.2f} seq/s, "
              f"{frames / seconds[size]:.0f} frames/s")
    print(f"  padded batches / one at a time: {ratio:.2f}x (target >= {target})")
    assert ratio >= target


def _has_bf16_units() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


@pytest.mark.skipif(not _has_bf16_units(), reason="no bf16 units (CUDA, AVX512-BF16 or AMX): bf16 autocast "
                    "would be emulated, so fp32 stays the choice there")
def test_bf16_autocast_inference_is_faster_with_the_same_embeddings() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    model = create_model("hstl-casia-b").to(device).eval()
    source = random_walks()
    extract_embeddings(model, source, batch_size=BATCH, progress=False, amp="bf16")  # warm-up
    seconds: dict[str, float] = {}
    embeddings = {}
    for amp in ("off", "bf16", "off", "bf16"):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        embeddings[amp] = extract_embeddings(model, source, batch_size=BATCH, progress=False, amp=amp).embeddings
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds[amp] = min(seconds.get(amp, float("inf")), time.perf_counter() - start)
    full, half = embeddings["off"], embeddings["bf16"]
    cosine = (full * half).sum(1) / (np.linalg.norm(full, axis=1) * np.linalg.norm(half, axis=1))
    ratio = seconds["off"] / seconds["bf16"]
    print(f"\nCASIA-B HSTL inference on {device}, batches of {BATCH}: fp32 {SEQUENCES / seconds['off']:.2f} seq/s, "
          f"bf16 {SEQUENCES / seconds['bf16']:.2f} seq/s: {ratio:.2f}x; lowest cosine to fp32 {cosine.min():.4f}")
    assert cosine.min() >= 0.99
    assert ratio > 1.0
