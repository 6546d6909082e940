"""A SIGTERM ends a command like Ctrl-C does, and a spawned worker stops when its parent is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from workbench._process import EXIT_TERMINATED, Terminated, is_running, sigterm_as_interrupt

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc")


def _wait_gone(pid: int, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if not is_running(pid):
            return True
        time.sleep(0.1)
    return not is_running(pid)


def test_sigterm_raises_terminated_once_then_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert signal.getsignal(signal.SIGTERM) == before
    assert issubclass(Terminated, KeyboardInterrupt), "every Ctrl-C cleanup runs for SIGTERM too"


def test_a_second_sigterm_does_not_cut_the_cleanup_short() -> None:
    cleaned = False
    with pytest.raises(Terminated), sigterm_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # ignored while the first one's cleanup runs
            time.sleep(0.05)
            cleaned = True
    assert cleaned


def test_command_line_reports_sigterm_with_its_own_exit_code(tmp_path: Path) -> None:
    # `workbench train` on a config that waits: a stand-in that sleeps inside main() keeps this cheap.
    script = textwrap.dedent("""
        import sys, time
        import workbench.cli as cli
        def slow(args):
            print("ready", flush=True)
            time.sleep(30)
            return 0
        parser = cli.build_parser
        def build():
            p = parser()
            p.set_defaults(func=slow)
            return p
        cli.build_parser = build
        sys.exit(cli.main([]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == EXIT_TERMINATED == 143
    assert "terminated" in err and "Traceback" not in err


PARENT = """
import multiprocessing as mp, os, time
def work(path, parent):
    from workbench._process import follow_parent
    open(path + ".tmp", "w").write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep({starting})  # a rank imports torch for seconds before it can follow its parent
    follow_parent(parent, poll_seconds={poll})
    open(path + ".following", "w").close()
    time.sleep(60)
if __name__ == "__main__":
    mp.get_context("spawn").Process(target=work, args=({pid_file!r}, os.getpid())).start()
    time.sleep(60)
"""


def _worker_of_killed_parent(tmp_path: Path, *, starting: float, poll: float, following: bool) -> int:
    """Start a parent that spawns a worker, SIGKILL the parent once the worker has started (``following``:
    once it follows its parent), and return the worker's pid."""
    pid_file = tmp_path / "worker.pid"
    script = tmp_path / "parent.py"
    script.write_text(PARENT.format(starting=starting, poll=poll, pid_file=str(pid_file)))
    proc = subprocess.Popen([sys.executable, str(script)])
    marker = pid_file.with_name(pid_file.name + ".following") if following else pid_file
    try:
        ends = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < ends, "the worker did not start"
            time.sleep(0.05)
        worker = int(pid_file.read_text())
        assert is_running(worker)
        proc.kill()  # SIGKILL: the parent can clean nothing up
        proc.wait()
        return worker
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _end(pid: int) -> None:
    """SIGKILL a worker that a failed test left running."""
    if is_running(pid):
        os.kill(pid, signal.SIGKILL)


@linux_only
def test_a_spawned_worker_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    worker = _worker_of_killed_parent(tmp_path, starting=0, poll=0.1, following=True)
    try:
        assert _wait_gone(worker, 10), "the worker trained on after its parent died"
    finally:
        _end(worker)


@linux_only
def test_a_worker_whose_parent_died_while_it_started_stops(tmp_path: Path) -> None:
    # The parent dies before the worker follows it: by then init is the worker's parent, and only the pid
    # the parent passed tells the worker that its own parent is gone.
    worker = _worker_of_killed_parent(tmp_path, starting=3, poll=0.1, following=False)
    try:
        assert _wait_gone(worker, 15), "a worker whose parent died while it started ran on as an orphan"
    finally:
        _end(worker)


@linux_only
def test_the_kernel_stops_a_worker_the_moment_its_parent_dies(tmp_path: Path) -> None:
    # An hour between looks: only the kernel's parent-death signal can stop the worker in time.
    worker = _worker_of_killed_parent(tmp_path, starting=0, poll=3600, following=True)
    try:
        assert _wait_gone(worker, 5), "the kernel did not signal the worker when its parent died"
    finally:
        _end(worker)
