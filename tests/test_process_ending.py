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

from workbench._process import EXIT_TERMINATED, Terminated, sigterm_as_interrupt

linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process parents from /proc")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _wait_gone(pid: int, seconds: float) -> bool:
    ends = time.monotonic() + seconds
    while time.monotonic() < ends:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return not _alive(pid)


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


@linux_only
def test_a_spawned_worker_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "worker.pid"
    parent = textwrap.dedent(f"""
        import multiprocessing as mp, time
        def work(path):
            from workbench._process import follow_parent
            follow_parent(poll_seconds=0.1)
            open(path, "w").write(str(__import__("os").getpid()))
            time.sleep(60)
        if __name__ == "__main__":
            mp.get_context("spawn").Process(target=work, args=({str(pid_file)!r},)).start()
            time.sleep(60)
    """)
    script = tmp_path / "parent.py"
    script.write_text(parent)
    proc = subprocess.Popen([sys.executable, str(script)])
    try:
        ends = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < ends, "the worker did not start"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        assert _alive(worker)
        proc.kill()  # SIGKILL: the parent can clean nothing up
        proc.wait()
        assert _wait_gone(worker, 10), "the worker trained on after its parent died"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
