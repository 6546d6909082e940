"""Trial liveness for every storage: heartbeats, stale-trial detection and exactly-once retries.

Optuna's own heartbeat exists only for RDB storages; the journal file storage has none. This module
gives all storages the same behaviour: a running trial records its worker (host and pid) and beats
every few seconds; a trial whose worker is gone (dead pid on this host) or whose heartbeat is older
than the grace period is marked FAIL by whichever worker notices first, and that worker alone
enqueues a retry with the same parameters. The storage refuses a state change on a finished trial,
which makes "first to fail it" a safe lock.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from workbench._process import is_running

log = logging.getLogger(__name__)

HEARTBEAT_KEY = "workbench:heartbeat"
WORKER_KEY = "workbench:worker"
RETRY_OF_KEY = "retry_of"
FAIL_REASON_KEY = "workbench:fail_reason"


def worker_id() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Heartbeat:
    """Context manager that marks ``trial`` as owned by this worker and beats until it exits."""

    def __init__(self, study: optuna.Study, trial_id: int, interval: float = 5.0) -> None:
        self._storage = study._storage
        self._trial_id = trial_id
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{trial_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._storage.set_trial_system_attr(self._trial_id, WORKER_KEY, worker_id())
        self._beat()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval * 2)

    def _beat(self) -> None:
        self._storage.set_trial_system_attr(self._trial_id, HEARTBEAT_KEY, time.time())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._beat()
            except Exception as exc:  # a finished trial or a storage hiccup must not kill the trial
                log.debug("heartbeat of trial %s skipped: %s", self._trial_id, exc)


@dataclass(frozen=True)
class ReapResult:
    """What a reaping pass did: trial numbers failed as stale, and the numbers it enqueued retries for."""

    failed: tuple[int, ...]
    retried: tuple[int, ...]


def is_stale(trial: FrozenTrial, grace: float, now: float | None = None) -> bool:
    """True when a RUNNING trial's worker is gone: a dead pid on this host, or no beat within ``grace``."""
    if trial.state != TrialState.RUNNING:
        return False
    now = time.time() if now is None else now
    owner = trial.system_attrs.get(WORKER_KEY)
    if isinstance(owner, str) and ":" in owner:
        host, pid = owner.rsplit(":", 1)
        if host == socket.gethostname() and pid.isdigit() and not is_running(int(pid)):
            return True
    last = trial.system_attrs.get(HEARTBEAT_KEY)
    if last is None:
        started = trial.datetime_start.timestamp() if trial.datetime_start else now
        return now - started > grace
    return now - float(last) > grace


def reap_stale_trials(study: optuna.Study, grace: float = 60.0) -> ReapResult:
    """Fail every stale RUNNING trial and enqueue one retry for each (first worker to fail it wins)."""
    storage = study._storage
    failed: list[int] = []
    retried: list[int] = []
    now = time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(trial, grace, now):
            continue
        try:
            # A finished trial takes no more attributes, so the reason goes first.
            storage.set_trial_system_attr(trial._trial_id, FAIL_REASON_KEY, "worker lost (stale heartbeat)")
            won = storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except RuntimeError:
            continue  # another worker finished or failed it first
        if not won:
            continue
        failed.append(trial.number)
        if trial.params:
            queue_retry(study, trial)
            retried.append(trial.number)
        log.warning("trial %d lost its worker; marked failed%s", trial.number,
                    " and queued again" if trial.params else "")
    return ReapResult(tuple(failed), tuple(retried))


def queue_retry(study: optuna.Study, trial: FrozenTrial | optuna.Trial) -> None:
    """Enqueue a retry of ``trial``: its parameters, its output folder (to resume from) and ``retry_of``."""
    study.enqueue_trial(
        trial.params,
        user_attrs={**_inherited_user_attrs(trial), RETRY_OF_KEY: trial.number},
        skip_if_exists=False,
    )


def _inherited_user_attrs(trial: FrozenTrial | optuna.Trial) -> dict[str, object]:
    # The output directory lets the retry resume from the lost trial's last checkpoint.
    keep = ("output_dir",)
    return {k: v for k, v in trial.user_attrs.items() if k in keep}


def count_trials(study: optuna.Study) -> dict[TrialState, int]:
    """Trials per state."""
    counts = dict.fromkeys(TrialState, 0)
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state] += 1
    return counts
