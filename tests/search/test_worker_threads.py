"""Study workers on a CPU share its cores: N workers get 1/N of the threads each, not N times too many."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

from workbench.search._devices import THREADS, visible_devices, worker_threads


def test_workers_split_the_cores_unless_the_user_chose_a_thread_count() -> None:
    assert worker_threads(2, 16, None) == 8
    assert worker_threads(3, 16, None) == 5
    assert worker_threads(4, 2, None) == 1, "at least one thread each"
    assert worker_threads(2, 16, "") == 8, "an empty OMP_NUM_THREADS is no choice"
    assert worker_threads(2, 16, "3") is None, "the user's OMP_NUM_THREADS holds for every worker"


def _report_threads(queue: mp.Queue) -> None:
    import torch

    queue.put((os.environ.get(THREADS), torch.get_num_threads()))


def test_a_spawned_worker_starts_torch_with_its_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(THREADS, raising=False)
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    with visible_devices(None, 1):
        proc = ctx.Process(target=_report_threads, args=(queue,))
        proc.start()
    assert THREADS not in os.environ, "the parent's environment is restored"
    assert queue.get(timeout=120) == ("1", 1)
    proc.join(30)
