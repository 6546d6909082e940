"""How workbench processes end: a SIGTERM is handled like Ctrl-C, and spawned workers follow their parent.

Schedulers and service managers stop a job with SIGTERM (SLURM on preemption or at its time limit,
``kill``, systemd, Kubernetes), then SIGKILL after a grace period. Python's default for SIGTERM is to die
on the spot: no trial is marked, no MLflow run is closed, and the worker processes a study spawned keep
training with nobody to collect their results. Here SIGTERM raises :class:`Terminated`, a
``KeyboardInterrupt``, so every ``except KeyboardInterrupt`` cleanup that Ctrl-C runs runs for it too.

Pools of worker processes (rendering, pretreating) start from a clean process, never by forking the caller:
a fork copies every lock another thread of the caller holds at that moment (a notebook kernel, a test
runner and a progress bar all run threads), and a worker that needs one waits forever, deaf to SIGTERM.

A spawned worker also watches its parent: when the parent is gone (even by SIGKILL, which nothing can
catch) the worker receives SIGTERM and ends the same way. On Linux the kernel sends it the moment the
parent dies (``PR_SET_PDEATHSIG``); everywhere a thread also looks for the parent every second.

Standard library only, so that any layer may use it.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

#: Exit status of a process ended by SIGTERM, as a shell reports it (128 + 15).
EXIT_TERMINATED = 128 + signal.SIGTERM

#: Seconds between two looks at whether a worker's parent is still there.
PARENT_POLL_SECONDS = 1.0

#: Linux ``prctl`` option (``<linux/prctl.h>``): the signal the kernel sends a process when its parent dies.
_PR_SET_PDEATHSIG = 1


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM."""


def _stop_once(signum: int, frame: FrameType | None) -> None:
    # Once: a second signal during the cleanup the first one started must not cut that cleanup short.
    for handled in _HANDLED:
        signal.signal(handled, signal.SIG_IGN)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Terminated(f"received {signal.Signals(signum).name}")


_HANDLED: tuple[int, ...] = ()


@contextlib.contextmanager
def sigterm_as_interrupt(*, sigint_once: bool = False) -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread; the old handlers return after.

    After the first SIGTERM further ones are ignored, so the cleanup it started runs to its end. With
    ``sigint_once`` SIGINT is handled the same way (a ``KeyboardInterrupt``, then ignored along with
    SIGTERM): for spawned workers, which receive the terminal's Ctrl-C and then their parent's SIGTERM.
    Outside the main thread (where Python cannot install handlers) it does nothing.
    """
    global _HANDLED
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT) if sigint_once else (signal.SIGTERM,)
    previous = {s: signal.getsignal(s) for s in signals}
    outer, _HANDLED = _HANDLED, signals
    for s in signals:
        signal.signal(s, _stop_once)
    try:
        yield
    finally:
        _HANDLED = outer
        for s, handler in previous.items():
            signal.signal(s, handler)


def pool_context() -> Any:
    """The multiprocessing context for pools of worker processes: ``forkserver`` where the platform has it
    (workers are forked from a small server started once, which holds no lock of the caller's threads),
    else ``spawn``. Not ``fork``: a worker forked from a caller with threads inherits their held locks.
    As with ``spawn``, a script that starts a pool must guard its entry point (``if __name__ == "__main__"``).
    """
    import multiprocessing

    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def is_running(pid: int) -> bool:
    """Whether process ``pid`` on this machine still runs. A zombie does not: a worker killed by SIGKILL
    stays one until the process that started it collects it, which may be hours later."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        # Without /proc (not Linux) the signal above is all there is to go by; with it, the process
        # ended between the two looks.
        return not Path("/proc").is_dir()
    # The state follows the command name in parentheses, which may itself hold spaces or parentheses.
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _signal_on_parent_death(signum: int) -> bool:
    """Have the kernel send this process ``signum`` the moment its parent dies; False where it cannot.

    Linux only (``prctl(PR_SET_PDEATHSIG)``). The kernel counts the parent as dead when the *thread* that
    started this process ends, so call it only in processes whose starter waits for them in that thread
    (every workbench launcher does: it joins its workers or ranks before it returns).
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        prctl = ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return False
    unused = ctypes.c_ulong(0)
    return prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signum), unused, unused, unused) == 0


def follow_parent(parent: int | None = None, *,
                  poll_seconds: float = PARENT_POLL_SECONDS) -> threading.Thread:
    """Have this process receive SIGTERM once its parent process has gone; returns the thread that watches.

    For processes that a workbench command spawns: if the command dies without stopping them (SIGKILL,
    the out-of-memory killer, a crash), they stop on their own instead of training on, unseen, on a
    shared machine or GPU. On Linux the kernel signals at once (``PR_SET_PDEATHSIG``); a daemon thread
    also compares ``os.getppid()`` with ``parent`` every ``poll_seconds``, which works everywhere.

    ``parent``: the pid of the process that started this one, as that process passed it. A spawned
    process takes seconds to import torch before it can call this; if its parent died meanwhile, it has
    been handed to another process (init or a subreaper), which ``os.getppid()`` (the default) would
    watch instead, and it would never stop.
    """
    expected = os.getppid() if parent is None else parent
    _signal_on_parent_death(signal.SIGTERM)

    def watch() -> None:
        # The first look comes before any sleep: it catches a parent that died before the kernel was asked.
        while os.getppid() == expected:
            time.sleep(poll_seconds)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="follow-parent", daemon=True)
    thread.start()
    return thread


def terminate_then_kill(procs: Sequence[Any], grace: float, log: logging.Logger) -> None:
    """SIGTERM every live process of ``procs`` (``multiprocessing`` processes), wait up to ``grace``
    seconds for them all, then SIGKILL and reap whatever is left, each with a warning in ``log``."""
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    ends = time.monotonic() + grace
    for proc in procs:
        proc.join(max(0.0, ends - time.monotonic()))
        if proc.is_alive():
            log.warning("%s did not stop within %.0f s of SIGTERM; killed", proc.name, grace)
            proc.kill()
            proc.join()


__all__ = [
    "EXIT_TERMINATED",
    "PARENT_POLL_SECONDS",
    "Terminated",
    "follow_parent",
    "is_running",
    "sigterm_as_interrupt",
    "terminate_then_kill",
]
