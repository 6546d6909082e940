"""Which GPU, and how many CPU threads, each study worker on this machine uses.

A worker sees one GPU: ``CUDA_VISIBLE_DEVICES`` is set in its environment before it starts (and so
before torch initialises CUDA), and inside it that GPU is ``cuda:0``. Without ``--gpus``, worker ``i``
of ``N`` takes GPU ``i mod G``; ``--gpus 0,2`` restricts (and orders) the GPUs used. GPU numbers are
those this process sees: when ``CUDA_VISIBLE_DEVICES`` is already set, they index that list.

A trial of ``K`` ranks (``[train] nproc_per_node = K``) takes ``K`` GPUs: worker ``i`` sees GPUs
``i*K`` to ``i*K+K-1`` of the list, and rank ``r`` trains on its ``cuda:r``. GPUs are not shared then:
``N x K`` GPUs must be there. Its ranks share the worker's CPU threads (``rank_threads``).

CPU threads: torch gives every process as many threads as the machine has cores, so N workers would run
N times too many threads and slow each other down. Each spawned worker gets ``OMP_NUM_THREADS`` = its
share of the cores this process may use (at least one), unless ``OMP_NUM_THREADS`` is already set, which
then holds for every worker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.search._config import StudyConfig

#: The environment variable CUDA reads once, when a process first uses it.
VISIBLE = "CUDA_VISIBLE_DEVICES"

#: The environment variable torch reads for its CPU thread count when it is imported.
THREADS = "OMP_NUM_THREADS"


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)


def worker_threads(workers: int, cores: int, inherited: str | None) -> int | None:
    """CPU threads for each of ``workers`` spawned workers sharing ``cores`` cores; ``None`` leaves the
    inherited ``OMP_NUM_THREADS`` (the user's choice) in place."""
    if inherited:
        return None
    return max(1, cores // max(1, workers))


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out, as ``CUDA_VISIBLE_DEVICES`` entries (empty without CUDA)."""
    import torch

    count = torch.cuda.device_count()
    inherited = [g.strip() for g in os.environ.get(VISIBLE, "").split(",") if g.strip()]
    if inherited:
        return inherited[:count] if count else []
    return [str(i) for i in range(count)]


def worker_gpus(workers: int, gpus: Sequence[int] | None, available: Sequence[str],
                ranks: int = 1) -> list[str | None]:
    """``CUDA_VISIBLE_DEVICES`` for each of ``workers`` workers, ``None`` where the worker is left alone.

    ``gpus`` (``--gpus``) lists GPU numbers among ``available``; without it every available GPU is used.
    With ``ranks`` > 1 (``train.nproc_per_node``) each worker takes that many GPUs of its own.
    Raises ``ValueError`` naming the option and what this machine has when a listed GPU is not there,
    or when the workers' ranks need more GPUs than there are.
    """
    if gpus is not None:
        if not gpus:
            raise ValueError("--gpus: give at least one GPU number, e.g. --gpus 0,1")
        if not available:
            raise ValueError(f"--gpus {','.join(map(str, gpus))}: this machine shows no CUDA device; drop --gpus")
        missing = [g for g in gpus if not 0 <= g < len(available)]
        if missing:
            raise ValueError(f"--gpus: GPU {missing[0]} is not here; this process sees {len(available)} "
                             f"GPU(s), numbered 0-{len(available) - 1}")
        chosen = [available[g] for g in gpus]
    elif available and (workers > 1 or ranks > 1):
        chosen = list(available)
    else:
        return [None] * workers
    if ranks > 1:
        if workers * ranks > len(chosen):
            where = f"--gpus lists {len(chosen)}" if gpus is not None else f"this process sees {len(chosen)}"
            raise ValueError(
                f"train.nproc_per_node = {ranks} with {workers} worker(s) needs {workers * ranks} GPUs, one per "
                f"rank, and {where}; lower --workers or train.nproc_per_node, or train on the CPU "
                '(train.device = "cpu")'
            )
        return [",".join(chosen[i * ranks:(i + 1) * ranks]) for i in range(workers)]
    return [chosen[i % len(chosen)] for i in range(workers)]


def trial_ranks(config: StudyConfig) -> int:
    """The processes each trial trains on (``train.nproc_per_node``), the same for every model of the study.

    GPUs are handed to workers before a trial picks its model, so ``[models.<name>]`` may not change it.
    """
    ranks = config.train.nproc_per_node
    for name in config.models:
        own = config.train_for(name).nproc_per_node
        if own != ranks:
            raise ValueError(
                f"models.{name}.nproc_per_node = {own} differs from train.nproc_per_node = {ranks}; every trial "
                "of a study trains on as many processes (workers take their GPUs before a trial picks its "
                "model): set it in [train] only"
            )
    return ranks


def parse_gpus(text: str) -> list[int]:
    """``"0,2"`` -> ``[0, 2]``; a clear error for anything else."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--gpus {text!r}: give GPU numbers separated by commas, e.g. --gpus 0,1") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"--gpus {text!r}: give GPU numbers (0 or more) separated by commas, e.g. --gpus 0,1")
    return values


@contextmanager
def visible_devices(value: str | None, threads: int | None = None) -> Iterator[None]:
    """Set ``CUDA_VISIBLE_DEVICES`` to ``value`` and ``OMP_NUM_THREADS`` to ``threads`` (each unchanged
    when ``None``) for the block, then restore them. A process started inside the block inherits them."""
    changes = {}
    if value is not None:
        changes[VISIBLE] = value
    if threads is not None:
        changes[THREADS] = str(threads)
    before = {name: os.environ.get(name) for name in changes}
    os.environ.update(changes)
    try:
        yield
    finally:
        for name, old in before.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old


def study_worker_gpus(config: StudyConfig, workers: int, gpus: Sequence[int] | None = None) -> list[str | None]:
    """``worker_gpus`` for a study's workers: each takes as many GPUs as its trials' ranks (none on the CPU)."""
    ranks = trial_ranks(config)
    return worker_gpus(workers, gpus, visible_gpus(), ranks if config.train.device != "cpu" else 1)


def start_workers(procs: Sequence[Any], devices: Sequence[str | None], threads: int | None) -> None:
    """Start each spawned process seeing its GPU(s) and ``threads`` CPU threads, which it inherits before
    it imports torch."""
    for proc, device in zip(procs, devices, strict=True):
        with visible_devices(device, threads):
            proc.start()
