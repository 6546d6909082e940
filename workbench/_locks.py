"""File locks between processes on one machine (standard library only, so that any layer may use them)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (created if missing) for the duration of the block.

    The lock dies with its process; separate openings of the file exclude each other, so threads of one
    process are serialised too.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def sqlite_creation_lock(database: str | Path) -> Iterator[None]:
    """Hold an exclusive file lock beside a SQLite database (``DATABASE.lock``) while it is opened.

    Optuna and MLflow create their tables on first opening, and two processes doing that on the
    same fresh file at once can both insert the schema version and one fails; opening under this lock
    lets exactly one create, and the others find the tables made.
    """
    with file_lock(Path(str(database) + ".lock")):
        yield
