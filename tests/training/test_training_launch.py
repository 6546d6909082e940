"""`launch_ranks`: two gloo ranks started from Python train, stop together, and fail cleanly when one dies."""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from training_toys import toy_config, toy_data, toy_model

from workbench._process import is_running
from workbench.training import (
    RankFailedError,
    RankTask,
    TrainConfig,
    TrainingCallback,
    launch_ranks,
    list_checkpoints,
    rank_threads,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


class ToyTask(RankTask):
    """The toy data and model in every rank; rank 0 evaluates with a stand-in score and names its step."""

    def __init__(self, fail_rank: int | None = None) -> None:
        self.fail_rank = fail_rank

    def data(self, config: TrainConfig) -> Any:
        return toy_data(config)

    def model(self, config: TrainConfig) -> nn.Module:
        if dist.get_rank() == self.fail_rank:
            raise RuntimeError(f"rank {self.fail_rank} cannot build its model")
        return toy_model()

    def evaluator(self, config: TrainConfig) -> Any:
        return lambda model, step: {"score": float(step), "threads": float(torch.get_num_threads())}

    def finish(self, trainer: Any, result: Any) -> Any:
        return {"world": dist.get_world_size() if dist.is_initialized() else None, "step": result.step}


class Recorder(TrainingCallback):
    """Runs in the launching process: keeps every hook call; ``action(hook, step)`` may raise or act."""

    def __init__(self, action: Any = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.action = action

    def on_train_start(self, info: Any) -> None:
        self.calls.append(("start", info.world_size))

    def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
        self.calls.append(("step", step))
        if self.action is not None:
            self.action("step", step)

    def on_evaluation(self, step: int, metrics: Mapping[str, float]) -> None:
        self.calls.append(("evaluation", dict(metrics)))
        if self.action is not None:
            self.action("evaluation", step)

    def on_train_end(self, result: Any) -> None:
        self.calls.append(("end", result.status))


class Stop(Exception):
    """What a pruner raises."""


def _config(tmp_path: Path, **changes: Any) -> TrainConfig:
    return toy_config(tmp_path / "run", **{"iterations": 6, "save_every": 1, "eval_every": 2, **changes})


def test_two_launched_ranks_train_and_rank_zero_hooks_run_in_the_launcher(tmp_path: Path) -> None:
    recorder = Recorder()
    launched = launch_ranks(_config(tmp_path), 2, task=ToyTask(), callbacks=[recorder], threads=1)
    assert launched.result.status == "completed" and launched.result.step == 6
    assert launched.finished == {"world": None, "step": 6}  # finish runs after the group is gone
    assert recorder.calls[0] == ("start", 2) and recorder.calls[-1] == ("end", "completed")
    assert [c[1] for c in recorder.calls if c[0] == "step"] == [1, 2, 3, 4, 5, 6]
    scores = [c[1] for c in recorder.calls if c[0] == "evaluation"]
    assert [s["score"] for s in scores] == [2.0, 4.0, 6.0] and scores[0]["threads"] == 1.0
    assert len(list_checkpoints(tmp_path / "run")) == 3  # keep_last; only rank 0 writes
    assert not mp.active_children(), "every rank has ended"

    # Resumed with more iterations, the job continues from its checkpoint.
    again = Recorder()
    more = launch_ranks(_config(tmp_path, iterations=8), 2, task=ToyTask(), callbacks=[again], resume=True,
                        threads=1)
    assert more.result.step == 8 and [c[1] for c in again.calls if c[0] == "step"] == [7, 8]


def test_a_callback_that_raises_stops_every_rank_at_the_same_step(tmp_path: Path, caplog) -> None:
    def prune(hook: str, step: int) -> None:
        if hook == "evaluation" and step == 2:
            raise Stop("pruned at step 2")

    recorder = Recorder(prune)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="workbench.training._launch"), pytest.raises(Stop, match="step 2"):
        launch_ranks(_config(tmp_path), 2, task=ToyTask(), callbacks=[recorder], threads=1)
    assert time.monotonic() - started < 60
    # Rank 1 left its loop too: no rank had to be terminated, and nothing trained past step 2.
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    assert [c[1] for c in recorder.calls if c[0] == "step"] == [1, 2]
    assert [p.name for p in list_checkpoints(tmp_path / "run")][-1] == "checkpoint-00000002.pt"
    assert not mp.active_children()


def test_a_callback_that_raises_before_the_first_step_ends_the_job(tmp_path: Path) -> None:
    class RefuseStart(TrainingCallback):
        def on_train_start(self, info: Any) -> None:
            raise Stop("no tracking store")

    # Rank 0 stops outside the training loop, where rank 1 already waits in its first collective.
    started = time.monotonic()
    with pytest.raises(Stop, match="no tracking store"):
        launch_ranks(_config(tmp_path), 2, task=ToyTask(), callbacks=[RefuseStart()], threads=1)
    assert time.monotonic() - started < 60
    assert not mp.active_children()


def test_a_killed_rank_fails_the_job_and_no_rank_is_left(tmp_path: Path) -> None:
    def kill_rank_one(hook: str, step: int) -> None:
        if hook == "step" and step == 3:
            (rank_one,) = [p for p in mp.active_children() if p.name == "rank-1"]
            os.kill(rank_one.pid, signal.SIGKILL)  # type: ignore[arg-type]

    started = time.monotonic()
    with pytest.raises(RankFailedError, match="rank 1 of 2 was killed by SIGKILL") as failure:
        launch_ranks(_config(tmp_path, iterations=200), 2, task=ToyTask(), callbacks=[Recorder(kill_rank_one)],
                     threads=1)
    assert time.monotonic() - started < 60
    assert failure.value.lost and failure.value.rank == 1
    assert not mp.active_children(), "rank 0 was stopped, not left waiting for its peer"
    assert list_checkpoints(tmp_path / "run"), "the checkpoints written before stay to resume from"


def test_a_rank_that_raises_fails_the_job_with_its_error(tmp_path: Path) -> None:
    with pytest.raises(RankFailedError, match="rank 1 of 2 failed: RuntimeError: rank 1 cannot build") as failure:
        launch_ranks(_config(tmp_path), 2, task=ToyTask(fail_rank=1), threads=1)
    assert not failure.value.lost
    assert not mp.active_children()


def test_two_jobs_launched_at_once_on_one_machine_meet_on_ports_of_their_own(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # As two study workers on one machine do: each job's store takes the port the system gives it.
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(launch_ranks, toy_config(tmp_path / f"job{i}", iterations=3), 2, task=ToyTask(),
                            threads=1) for i in range(2)]
        results = [job.result(timeout=100) for job in jobs]
    assert [r.result.status for r in results] == ["completed", "completed"]
    assert [len(list_checkpoints(tmp_path / f"job{i}")) for i in range(2)] == [1, 1]


def test_ranks_share_the_launchers_threads() -> None:
    assert rank_threads(2, 8) == 4 and rank_threads(4, 2) == 1 and rank_threads(1, 3) == 3
    with pytest.raises(ValueError, match="nproc_per_node"):
        TrainConfig(nproc_per_node=0)


LAUNCHER = """
import sys
sys.path.insert(0, {tests!r})
import multiprocessing as mp
from pathlib import Path
from training_toys import toy_config
from test_training_launch import ToyTask
from workbench._process import sigterm_as_interrupt
from workbench.training import TrainingCallback, launch_ranks

class Announce(TrainingCallback):
    def on_train_start(self, info):
        print(" ".join(str(p.pid) for p in mp.active_children() if p.name.startswith("rank-")), flush=True)

if __name__ == "__main__":
    with sigterm_as_interrupt():
        launch_ranks(toy_config(Path({out!r}), iterations=100000, save_every=0), 2, task=ToyTask(),
                     callbacks=[Announce()], threads=1)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_ranks_end_with_their_launcher(tmp_path: Path, stop: signal.Signals) -> None:
    import subprocess
    import sys

    script = tmp_path / "launcher.py"
    script.write_text(LAUNCHER.format(tests=str(Path(__file__).parent), out=str(tmp_path / "run")))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout is not None
        ranks = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(ranks) == 2, "both ranks started"
        proc.send_signal(stop)
        proc.wait(timeout=60)
        ends = time.monotonic() + 30
        while any(is_running(pid) for pid in ranks) and time.monotonic() < ends:
            time.sleep(0.2)
        assert not any(is_running(pid) for pid in ranks), "a rank trained on after its launcher ended"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
