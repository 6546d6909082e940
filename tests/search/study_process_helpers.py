"""Helpers for tests that start `workbench study run` processes and for the PostgreSQL they may use."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get("WORKBENCH_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_or_skip() -> str:
    """The test database's URL, or a skip naming it when it does not answer."""
    try:
        import psycopg2

        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except Exception as exc:
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} does not answer ({type(exc).__name__}); "
                    "start it or set WORKBENCH_TEST_POSTGRES")
    return POSTGRES_URL


def start_study_run(study_file: Path, *extra: str) -> subprocess.Popen[bytes]:
    """`workbench study run FILE EXTRA...` in a new process (one torch thread), output captured."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "workbench", "study", "run", str(study_file), *extra],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def stop_all(procs: list[subprocess.Popen[bytes]]) -> None:
    """Kill and reap every process still running (a test's cleanup, whatever happened)."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
