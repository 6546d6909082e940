"""The device check (``nox -s gpu``): the CUDA paths run end to end on whatever device there is.

On a CPU the same checks run on the CPU (the CUDA-only assertions skip), so the check is known to
work before it meets a GPU. On a GPU it prints, and records in the check's JSON, what a researcher
needs to know: the host synchronisations per training step, sequences per second, memory handed back.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from training_toys import toy_config, toy_data, toy_model

from workbench.evaluation._distance import GalleryIndex
from workbench.evaluation._engine import retrieval_scores
from workbench.models import native_bf16
from workbench.training import Trainer, TrainingCallback, release_memory

pytestmark = pytest.mark.device

CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda", 0) if CUDA else torch.device("cpu")
cuda_only = pytest.mark.cuda


def test_report_device(figures) -> None:
    name = torch.cuda.get_device_name(DEVICE) if CUDA else "cpu"
    figures.update(device=name, native_bf16=native_bf16(DEVICE),
                   capability=list(torch.cuda.get_device_capability(DEVICE)) if CUDA else None)
    print(f"\ndevice check on {name}, torch {torch.__version__}, native bf16: {native_bf16(DEVICE)}")


def test_retrieval_with_the_gallery_on_the_device_matches_the_cpu() -> None:
    rng = np.random.default_rng(0)
    gallery = rng.normal(size=(300, 16, 4)).astype(np.float32)
    probe = gallery[:120] + 0.3 * rng.normal(size=(120, 16, 4)).astype(np.float32)
    ids = np.arange(300) % 50
    results = []
    for device in ("cpu", DEVICE):
        index = GalleryIndex(gallery, "euclidean", device=device)
        results.append(retrieval_scores(probe, ids[:120], index, ids, "euclidean", top_k=5, chunk_size=32))
    assert np.array_equal(results[0].scores.first_hit, results[1].scores.first_hit)
    assert results[0].top_rows is not None and results[1].top_rows is not None
    assert np.array_equal(results[0].top_rows, results[1].top_rows)


class _SyncCounter(TrainingCallback):
    """Counts host synchronisations per step with CUDA's sync debug mode (CUDA only)."""

    def __init__(self) -> None:
        self.per_step: list[int] = []
        self._caught: list[warnings.WarningMessage] = []
        self._context: warnings.catch_warnings | None = None

    def on_train_start(self, info) -> None:
        self._context = warnings.catch_warnings(record=True)
        self._caught = self._context.__enter__()  # type: ignore[assignment]
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")

    def on_step(self, step, metrics) -> None:
        self.per_step.append(sum("synchroniz" in str(w.message) for w in self._caught))
        self._caught.clear()

    def on_train_end(self, result) -> None:
        torch.cuda.set_sync_debug_mode("default")
        if self._context is not None:
            self._context.__exit__(None, None, None)


@pytest.mark.parametrize("amp", ["off", "bf16", "fp16"])
def test_training_steps_on_the_device(amp: str, tmp_path: Path, figures) -> None:
    if amp == "fp16" and not CUDA:
        pytest.skip("fp16 trains on CUDA only")
    config = replace(toy_config(tmp_path / "run", iterations=12, save_every=0), device=DEVICE.type, amp=amp)
    counter = _SyncCounter() if CUDA else None
    trainer = Trainer(config, data=toy_data(config), model=toy_model(), progress=False,
                      callbacks=[counter] if counter else [])
    result = trainer.fit()
    assert result.status == "completed"
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # type: ignore[union-attr]
    speed = result.last_metrics.get("sequences_per_second", float("nan"))
    syncs = f", host synchronisations per step (after the first): {counter.per_step[1:]}" if counter else ""
    figures.update(toy_sequences_per_second=speed, syncs_per_step=counter.per_step[1:] if counter else None)
    print(f"\n{DEVICE.type} {amp}: {speed:.0f} sequences/s on the toy model{syncs}")
    if CUDA:
        assert torch.backends.cudnn.benchmark


class _Prune(Exception):
    pass


class _PruneAtEvaluation(TrainingCallback):
    def on_evaluation(self, step, metrics) -> None:
        raise _Prune


@cuda_only
def test_a_pruned_trial_hands_its_gpu_memory_back(tmp_path: Path, figures) -> None:
    # A complete run first: what CUDA keeps for the process once used (cuBLAS workspaces, cuDNN
    # handles, the first optimizer's one-off import) is not a trial's to hand back.
    warm = replace(toy_config(tmp_path / "warm", iterations=2, save_every=0), device="cuda")
    Trainer(warm, data=toy_data(warm), model=toy_model(), progress=False).fit()
    gc.collect()
    release_memory()
    before = torch.cuda.memory_allocated(DEVICE)
    config = replace(toy_config(tmp_path / "run", iterations=6, eval_every=2, save_every=0), device="cuda")
    trainer = Trainer(config, data=toy_data(config), model=toy_model(), progress=False,
                      evaluator=lambda m, s: {"rank1": 0.0}, callbacks=[_PruneAtEvaluation()])
    gc.collect()
    gc.disable()  # what is still allocated below is held by references, not waiting for a collection
    try:
        with contextlib.suppress(_Prune):
            trainer.fit()
        del trainer
        leftover = torch.cuda.memory_allocated(DEVICE) - before
    finally:
        gc.enable()
    release_memory()
    figures.update(leftover_bytes=leftover, reserved_after_release_bytes=torch.cuda.memory_reserved(DEVICE))
    print(f"\nleft allocated after a pruned trial, before any collection: {leftover} bytes; reserved after "
          f"release_memory: {torch.cuda.memory_reserved(DEVICE)} bytes")
    assert leftover == 0


@cuda_only
def test_peak_memory_ignores_what_the_process_already_holds(figures) -> None:
    from workbench.cost import measure_peak_memory

    measure_peak_memory("hstl-small", (1, 30, 64, 44), device=DEVICE, mode="train")  # kernels chosen once
    first = measure_peak_memory("hstl-small", (1, 30, 64, 44), device=DEVICE, mode="train")
    ballast = torch.empty(256 * 1024 * 1024, dtype=torch.uint8, device=DEVICE)  # another trial's leftovers
    second = measure_peak_memory("hstl-small", (1, 30, 64, 44), device=DEVICE, mode="train")
    del ballast
    figures.update(step_peak_mib_alone=first.peak_mb, step_peak_mib_beside_256_mib=second.peak_mb)
    print(f"\npeak memory of one training step: {first.peak_mb:.1f} MiB alone, {second.peak_mb:.1f} MiB "
          "beside 256 MiB of other allocations")
    assert abs(second.peak_mb - first.peak_mb) < 16


@cuda_only
def test_bf16_is_native_on_this_gpu_exactly_when_torch_finds_it_without_emulation() -> None:
    with torch.cuda.device(DEVICE):  # torch asks the current device; the workbench asks the one named
        hardware = torch.cuda.is_bf16_supported(including_emulation=False)
    assert native_bf16(DEVICE) == hardware
