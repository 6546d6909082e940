"""Start the ranks of one DDP job from Python: a study trial, or ``workbench train``, over K processes.

The launching process does not train. It hosts the ranks' rendezvous store on a port the system picks
as it binds it (so two launches on one machine never collide), spawns K ranks, runs rank 0's training
callbacks itself, and watches every rank:

- Rank 0 forwards each hook call (``on_step``, ``on_evaluation`` ...) and waits for the answer. A
  callback that raises here (a pruner) is answered with a stop request, which rank 0 raises inside its
  hook; the trainer then stops every rank at the same step, as it does for any hook that fails, and the
  launcher raises the callback's own exception once the ranks have ended.
- A rank that raises, exits or is killed ends the job: the launcher SIGTERMs the others (a rank dies on
  SIGTERM at once, even inside a collective that would otherwise wait for the dead rank until the
  distributed timeout), kills what is left after a grace period and raises :class:`RankFailedError`.
- Ranks ignore SIGINT (the terminal's Ctrl-C reaches the launcher, which stops them) and end when the
  launcher is gone, even by SIGKILL and even while they still start (``follow_parent``), so none trains
  on unseen or waits for its store until the distributed timeout.

Checkpoints are written atomically by rank 0, so a job ended this way resumes from its last one.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

from workbench._process import follow_parent, terminate_then_kill
from workbench.models import resolve_device
from workbench.training._callbacks import CallbackList, TrainingCallback, TrainResult
from workbench.training._config import TrainConfig
from workbench.training._distributed import DistributedContext, barrier, init_process_group
from workbench.training._trainer import Evaluator, Trainer

if TYPE_CHECKING:
    from torch import nn

    from workbench.training._batches import TrainData

log = logging.getLogger(__name__)

#: The ranks of a launched job run on this machine and meet on its loopback interface.
LOOPBACK = "127.0.0.1"

#: Seconds the ranks get to end on their own after their last word, and again after SIGTERM before SIGKILL.
STOP_GRACE_SECONDS = 10.0

#: Seconds a failure waits for another rank to show that it was killed first (and so is the cause).
CAUSE_WAIT_SECONDS = 2.0


class RankFailedError(RuntimeError):
    """A rank of a launched job raised, exited or was killed; the launcher stopped the others.

    ``lost`` is True when the rank was killed by a signal without raising anything (the out-of-memory
    killer, a user's ``kill``): nothing in the job itself failed, and it may be resumed from its checkpoint.
    """

    def __init__(self, message: str, rank: int, exitcode: int | None = None, lost: bool = False) -> None:
        super().__init__(message)
        self.rank = rank
        self.exitcode = exitcode
        self.lost = lost


class RankTask:
    """What the ranks of a launched job build besides the trainer; subclass what you need.

    The task is pickled to every rank, so it carries plain values (paths, configs) and builds heavy
    things (data, evaluation sources) in the rank. ``evaluator`` and ``finish`` run on rank 0 only.
    ``RankTask(evaluator)`` hands rank 0 a picklable evaluator as it is.
    """

    def __init__(self, evaluator: Evaluator | None = None) -> None:
        self._evaluator = evaluator

    def data(self, config: TrainConfig) -> TrainData | None:
        """The training data (``None``: what ``config`` names)."""
        return None

    def model(self, config: TrainConfig) -> nn.Module | None:
        """The model (``None``: what ``config`` names)."""
        return None

    def evaluator(self, config: TrainConfig) -> Evaluator | None:
        """Rank 0's evaluator (``None``: no evaluation)."""
        return self._evaluator

    def finish(self, trainer: Trainer, result: TrainResult) -> Any:
        """Rank 0, after training completed: anything picklable for the launcher (e.g. files written)."""
        return None


@dataclass(frozen=True)
class LaunchResult:
    """Rank 0's ``TrainResult`` and what its task's ``finish`` returned."""

    result: TrainResult
    finished: Any = None


class _StopRequested(Exception):
    """Raised in rank 0's hook when a launcher-side callback raised; the trainer stops every rank."""


class _ForwardHooks(TrainingCallback):
    """Rank 0's only callback: sends every hook call to the launcher and waits for its answer."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _call(self, name: str, *args: Any) -> None:
        self.conn.send(("hook", name, args))
        answer = self.conn.recv()
        if answer is not None:
            raise _StopRequested(answer)

    def on_train_start(self, info: Any) -> None:
        self._call("on_train_start", info)

    def on_step(self, step: int, metrics: Any) -> None:
        self._call("on_step", step, metrics)

    def on_evaluation(self, step: int, metrics: Any) -> None:
        self._call("on_evaluation", step, metrics)

    def on_checkpoint(self, step: int, path: Any) -> None:
        self._call("on_checkpoint", step, path)

    def on_train_end(self, result: TrainResult) -> None:
        self._call("on_train_end", result)


def rank_threads(nproc: int, launcher_threads: int | None = None) -> int:
    """CPU threads per rank: the launcher's own (``OMP_NUM_THREADS`` or its cores) shared by ``nproc`` ranks."""
    threads = launcher_threads if launcher_threads is not None else torch.get_num_threads()
    return max(1, threads // max(1, nproc))


def _rank_main(rank: int, world: int, port: int, config: TrainConfig, task: RankTask, resume: bool,
               progress: bool, threads: int, launcher: int, conn: Connection) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the launcher decides when its ranks stop
    follow_parent(launcher)  # its pid, as it passed it: it may have died while this rank imported torch
    os.environ["OMP_NUM_THREADS"] = str(threads)  # for whatever this rank starts
    torch.set_num_threads(threads)
    try:
        context = DistributedContext(rank=rank, world_size=world, local_rank=rank)
        device = resolve_device(config.device, rank)
        timeout = timedelta(minutes=config.distributed_timeout_minutes)
        store = dist.TCPStore(LOOPBACK, port, world, False, timeout)
        init_process_group(context, device, config.distributed_timeout_minutes, store=store)
        trainer = Trainer(config, data=task.data(config), model=task.model(config),
                          evaluator=task.evaluator(config) if rank == 0 else None,
                          callbacks=[_ForwardHooks(conn)] if rank == 0 else [],
                          progress=progress and rank == 0, context=context)
        try:
            result = trainer.fit(resume=resume)
        except _StopRequested:
            dist.destroy_process_group()
            conn.send(("stopped", None, None))
            return
        if result.status == "completed":
            barrier()  # no rank leaves the group while another still talks in it
        dist.destroy_process_group()
        finished = task.finish(trainer, result) if rank == 0 else None
        conn.send(("done", result, finished))
    except BaseException as exc:
        conn.send(("failed", "".join(traceback.format_exception(exc)), None))
        # Leave at once: tearing down a group whose peers still wait in a collective can wait with them.
        os._exit(1)


def _describe_exit(exitcode: int | None) -> str:
    if exitcode is None:
        return "did not exit"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


def _stop(procs: Sequence[mp.process.BaseProcess], grace: float, *, ending: bool) -> None:
    """SIGTERM the ranks still running (after ``grace`` seconds to end on their own when they are
    ``ending``), then SIGKILL whatever outlives another ``grace``."""
    if ending:
        ends = time.monotonic() + grace
        for proc in procs:
            proc.join(max(0.0, ends - time.monotonic()))
        for proc in procs:
            if proc.is_alive():
                log.warning("%s did not end within %.0f s of its last message; SIGTERM", proc.name, grace)
    terminate_then_kill(procs, grace, log)


class _Supervisor:
    """The launcher's side of a running job: answers rank 0's hooks and notices the first rank to fail."""

    def __init__(self, procs: Sequence[mp.process.BaseProcess], conns: Sequence[Connection],
                 hooks: CallbackList) -> None:
        self.procs, self.conns, self.hooks = procs, conns, hooks
        self.ended: dict[int, tuple[str, Any, Any]] = {}
        self.handed: Exception | None = None  # the callback exception rank 0 was asked to stop for

    def run(self, poll_seconds: float) -> LaunchResult:
        world = len(self.procs)
        # Once rank 0 stopped for a callback, the others are stopping too (or waiting for rank 0 in
        # vain, when it stopped outside the training loop): the launcher gives them a grace period.
        while len(self.ended) < world and self.ended.get(0, ("",))[0] != "stopped":
            pending = [r for r in range(world) if r not in self.ended]
            wait([self.conns[r] for r in pending] + [self.procs[r].sentinel for r in pending], poll_seconds)
            for rank in pending:
                self._read(rank)
        kind, result, finished = self.ended[0]
        if kind == "stopped":
            assert self.handed is not None, "rank 0 stops only when a callback asked it to"
            raise self.handed
        return LaunchResult(result, finished)

    def _read(self, rank: int) -> None:
        conn, proc = self.conns[rank], self.procs[rank]
        try:
            while rank not in self.ended and conn.poll():
                message = conn.recv()
                if message[0] == "hook":
                    conn.send(self._hook(message[1], message[2]))
                elif message[0] == "failed":
                    if self.handed is None:
                        log.error("rank %d of %d failed:\n%s", rank, len(self.procs), message[1].rstrip())
                    self._fail(RankFailedError(self._failure(rank, message[1]), rank))
                else:
                    self.ended[rank] = message
        except (EOFError, OSError):
            # The rank closed its end: it is exiting. Its status tells how, once it has.
            proc.join(STOP_GRACE_SECONDS)
            if rank not in self.ended:
                exitcode = proc.exitcode
                lost = exitcode is not None and exitcode < 0
                self._fail(RankFailedError(f"rank {rank} of {len(self.procs)} {_describe_exit(exitcode)}",
                                           rank, exitcode, lost))

    def _hook(self, name: str, args: tuple[Any, ...]) -> str | None:
        try:
            getattr(self.hooks, name)(*args)
        except Exception as exc:  # a pruner, or a tracking call that failed: every rank stops
            self.handed = exc
            return f"{type(exc).__name__}: {exc}"
        return None

    def _failure(self, rank: int, formatted: str) -> str:
        """One line: the rank and the last line of its traceback (the whole traceback is logged)."""
        last = formatted.strip().splitlines()[-1] if formatted.strip() else "no message"
        return f"rank {rank} of {len(self.procs)} failed: {last}"

    def _fail(self, error: RankFailedError) -> None:
        if self.handed is not None:
            # A callback had already asked every rank to stop; what failed after is a consequence of that.
            raise self.handed
        raise self._root_cause(error)

    def _root_cause(self, error: RankFailedError) -> RankFailedError:
        """The failure to report: a rank killed by a signal rather than the ranks that lost it as a peer.

        A rank killed from outside takes its connections down, and the ranks it trained with fail in
        their next collective; those failures may reach the launcher first.
        """
        if error.lost:
            return error
        ends = time.monotonic() + CAUSE_WAIT_SECONDS
        for rank, proc in enumerate(self.procs):
            if rank == error.rank or rank in self.ended:
                continue
            proc.join(max(0.0, ends - time.monotonic()))
            if proc.exitcode is not None and proc.exitcode < 0:
                return RankFailedError(f"rank {rank} of {len(self.procs)} {_describe_exit(proc.exitcode)}",
                                       rank, proc.exitcode, lost=True)
        return error


def launch_ranks(config: TrainConfig, nproc: int, *, task: RankTask | None = None,
                 callbacks: Sequence[TrainingCallback] = (), resume: bool = False, progress: bool = False,
                 threads: int | None = None, poll_seconds: float = 1.0) -> LaunchResult:
    """Train ``config`` as ``nproc`` DDP ranks on this machine (NCCL on CUDA, gloo on CPU); returns rank 0's result.

    Rank ``r`` trains on ``cuda:r`` on CUDA (set ``CUDA_VISIBLE_DEVICES`` to choose the GPUs before
    calling). ``callbacks`` run here, in the calling process, for rank 0's hooks; an exception one of
    them raises stops every rank and is raised here. ``threads``: CPU threads per rank (default:
    ``rank_threads(nproc)``). Raises :class:`RankFailedError` when a rank fails, after every rank ended.
    """
    if nproc < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc}")
    context = mp.get_context("spawn")
    timeout = timedelta(minutes=config.distributed_timeout_minutes)
    # Port 0: the system picks a free port as the store binds it, so concurrent launches cannot collide.
    store = dist.TCPStore(LOOPBACK, 0, None, True, timeout, wait_for_workers=False)
    pipes = [context.Pipe() for _ in range(nproc)]
    per_rank = threads if threads is not None else rank_threads(nproc)
    procs = [context.Process(target=_rank_main, name=f"rank-{r}",
                             args=(r, nproc, store.port, config, task or RankTask(), resume, progress, per_rank,
                                   os.getpid(), child))
             for r, (_, child) in enumerate(pipes)]
    conns = [parent for parent, _ in pipes]
    supervisor = _Supervisor(procs, conns, CallbackList(list(callbacks)))
    ended = False
    try:
        for proc in procs:
            proc.start()
        for _, child in pipes:
            child.close()  # the ranks hold the only other ends, so a rank that dies shows as end-of-file
        outcome = supervisor.run(poll_seconds)
        ended = True
        return outcome
    finally:
        # Every rank has sent its last word when the job ended well, and they stop by themselves when a
        # callback stopped it. Otherwise some may wait in a collective for a rank that is gone: end them now.
        _stop([p for p in procs if p.pid is not None], STOP_GRACE_SECONDS,
              ending=ended or supervisor.handed is not None or len(supervisor.ended) == len(procs))
        for conn in conns:
            conn.close()
        del store
