"""Worker tasks for tests of process pools: importable by a worker that starts from a clean process."""

from __future__ import annotations

import threading

#: A lock of this module; a test holds it in another thread while a pool starts.
LOCK = threading.Lock()


def under_lock(value: int) -> int:
    """Take ``LOCK`` (as a library call inside a worker might take a lock of its own module), then answer."""
    with LOCK:
        return value * 2
