"""Pools of worker processes (rendering, pretreating) do not inherit the locks the caller's threads hold."""

from __future__ import annotations

import threading

from pool_helpers import LOCK, under_lock

from workbench._process import pool_context


def test_a_pool_started_while_another_thread_holds_a_lock_still_answers() -> None:
    # A forked worker would start with LOCK held by a thread it does not have, and wait for it forever
    # (a notebook kernel, a test runner or a progress bar runs such threads in the caller).
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with LOCK:
            taken.set()
            release.wait(120)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert taken.wait(10)
    try:
        with pool_context().Pool(2) as pool:
            answers = pool.map_async(under_lock, [1, 2, 3]).get(timeout=120)
    finally:
        release.set()
        holder.join(10)
    assert answers == [2, 4, 6]
