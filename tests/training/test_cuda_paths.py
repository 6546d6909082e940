"""What would break on the first GPU, checked on the CPU with fakes: memory held by pruned trials,
device binding and timeouts of the process group, pinning, bf16 detection, fp16 edge cases in the
trainer (an overflowing unused head, steps the scaler skips), one host copy of the loss parts, cuDNN
autotuning kept to the run, and a failing hook under DDP. The CUDA runs themselves are in the device
check (``nox -s gpu``)."""

from __future__ import annotations

import gc
import os
import re
import socket
import subprocess
import sys
import textwrap
import tomllib
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.overrides import TorchFunctionMode
from training_toys import MemorySource, ViewHeadToy, toy_config, toy_data, toy_model

from workbench.models import native_bf16
from workbench.training import (
    DistributedContext,
    LossConfig,
    SchedulerConfig,
    Trainer,
    TrainingCallback,
    TrainResult,
    load_checkpoint,
)
from workbench.training import _data as data_module
from workbench.training import _distributed as distributed
from workbench.training._trainer import _host_floats, apply_gradients

ROOT = Path(__file__).resolve().parents[2]


class _Stop(Exception):
    pass


class _StopAtEvaluation(TrainingCallback):
    def on_evaluation(self, step: int, metrics: dict) -> None:
        raise _Stop(f"stopped at {step}")


def test_a_pruned_trainer_is_freed_without_a_garbage_collection(tmp_path: Path) -> None:
    # A pruned trial ends with an exception raised from the training loop. A reference cycle through
    # that exception's traceback kept the model, optimizer state and gradients alive until a full
    # collection; with several workers on one GPU the next trials ran out of memory.
    # The first optimizer of a process imports torch's compiler, and a traceback kept by that import
    # holds the frames around it for good: build one first so that only the trainer's own references count.
    torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    config = toy_config(tmp_path / "run", iterations=4, eval_every=2)
    trainer = Trainer(config, data=toy_data(config), model=toy_model(), progress=False,
                      evaluator=lambda m, s: {"rank1": 0.0}, callbacks=[_StopAtEvaluation()])
    trainer_ref, model_ref = weakref.ref(trainer), weakref.ref(trainer.model)
    gc.collect()
    gc.disable()
    try:
        stopped = False
        try:
            trainer.fit()
        except _Stop:  # a plain handler drops the exception when it ends (pytest.raises would keep it)
            stopped = True
        assert stopped
        del trainer
        assert trainer_ref() is None, "the trainer outlived its pruned run"
        assert model_ref() is None, "the model outlived its pruned run"
    finally:
        gc.enable()


def test_bf16_is_native_only_from_compute_capability_8(monkeypatch) -> None:
    capability = {0: (8, 0), 1: (7, 0), 2: (7, 5)}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability[index])
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)  # counts emulation: not asked
    assert native_bf16("cuda:0")
    assert not native_bf16("cuda:1")  # V100
    assert not native_bf16("cuda:2")  # T4
    assert not native_bf16("cuda")  # the current device is the V100


def test_each_rank_is_bound_to_its_local_gpu_with_a_long_timeout(monkeypatch) -> None:
    calls: dict[str, object] = {}
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(distributed.dist, "init_process_group", lambda **kw: calls.update(init=kw))
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.update(bound=device))
    # Second node of a job with 2 processes per node: global rank 3, local rank 1.
    context = DistributedContext(rank=3, world_size=4, local_rank=1)
    assert distributed.init_process_group(context, torch.device("cuda", 1), timeout_minutes=90)
    assert calls["bound"] == torch.device("cuda", 1)
    init = calls["init"]
    assert init["backend"] == "nccl" and init["device_id"] == torch.device("cuda", 1)
    assert init["timeout"] == timedelta(minutes=90) and init["rank"] == 3
    calls.clear()
    distributed.init_process_group(DistributedContext(rank=0, world_size=2), torch.device("cpu"))
    assert "bound" not in calls and "device_id" not in calls["init"]
    assert calls["init"]["timeout"] >= timedelta(minutes=60), "NCCL's 10-minute default is too short"


def test_the_timeout_is_a_setting_the_trainer_passes_on(tmp_path: Path, monkeypatch) -> None:
    seen: list[float] = []
    monkeypatch.setattr("workbench.training._trainer.init_process_group",
                        lambda ctx, device, timeout: seen.append(timeout) or False)
    config = replace(toy_config(tmp_path / "run", iterations=1), distributed_timeout_minutes=240.0)
    Trainer(config, data=toy_data(config), model=toy_model(), progress=False).fit()
    assert seen == [240.0]
    with pytest.raises(ValueError, match="distributed_timeout_minutes"):
        replace(config, distributed_timeout_minutes=0)


def test_batches_are_pinned_only_for_cuda_training(tmp_path: Path, monkeypatch) -> None:
    # A GPU machine training on its CPU: pinning there would create a CUDA context in every process.
    seen: list[bool] = []

    class Recording(torch.utils.data.DataLoader):
        def __init__(self, *args, **kwargs) -> None:
            seen.append(kwargs["pin_memory"])
            super().__init__(*args, **{**kwargs, "pin_memory": False})

    monkeypatch.setattr(data_module, "DataLoader", Recording)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(data_module, "open_source", lambda root, partition, subset: MemorySource())
    config = toy_config(tmp_path / "run", iterations=1)
    config = replace(config, data=replace(config.data, path=str(tmp_path)))
    for device, pinned in ((torch.device("cpu"), False), (torch.device("cuda", 0), True), (None, False)):
        data = data_module.build_train_data(config, DistributedContext(), device)
        next(data.batches(0, DistributedContext()))
        assert seen[-1] is pinned, f"device {device}"


def test_the_unused_head_term_stays_zero_when_fp16_logits_overflow() -> None:
    # 64 x 11 fp16 logits of 60000 sum past fp16's largest value (65504): inf, and inf * 0 is NaN.
    logits = torch.full((64, 11), 60000.0, dtype=torch.float16, requires_grad=True)
    assert torch.isnan(logits.sum() * 0.0), "the old term"
    term = distributed.zero_gradient_term(logits)
    assert term.item() == 0.0
    term.backward()
    assert logits.grad is not None and torch.equal(logits.grad, torch.zeros_like(logits.grad))
    with_inf = torch.tensor([float("inf"), 1.0], dtype=torch.float16, requires_grad=True)
    assert distributed.zero_gradient_term(with_inf).item() == 0.0


def test_an_unused_view_head_whose_fp16_logits_overflow_trains_under_ddp(tmp_path: Path) -> None:
    # The trainer's zero term for an unused head once summed the fp16 logits themselves: inf, then NaN.
    # The context says two ranks, so the trainer takes its DDP path; a one-process gloo group runs it here.
    config = toy_config(tmp_path / "run", iterations=2, save_every=0, loss=LossConfig(view_weight=0.0))
    model = ViewHeadToy(offset=60000.0, half=True)
    head = model.view_head.weight.detach().clone()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        result = Trainer(config, data=toy_data(config), model=model, progress=False,
                         context=DistributedContext(rank=0, world_size=2)).fit()
    finally:
        dist.destroy_process_group()
    assert result.status == "completed" and result.skipped_steps == 0
    assert torch.equal(model.view_head.weight, head), "the unused head's gradient is an exact zero"


class _HostReads(TorchFunctionMode):
    """Counts the calls that copy a tensor's values to the host (each one a synchronisation on a GPU)."""

    READS = (torch.Tensor.tolist, torch.Tensor.item, torch.Tensor.__float__, torch.Tensor.numpy, torch.Tensor.cpu)

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple = (),
                           kwargs: dict | None = None) -> Any:
        if func in self.READS:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_loss_parts_reach_the_host_in_one_copy() -> None:
    parts = {"loss": torch.tensor(1.5, requires_grad=True) * 2, "accuracy": torch.tensor([0.25]),
             "scale": 2, "mean_distance": torch.tensor(0.5, dtype=torch.bfloat16)}
    with _HostReads() as reads:
        floats = _host_floats(parts)
    assert floats == {"loss": 3.0, "accuracy": 0.25, "scale": 2.0, "mean_distance": 0.5}
    assert list(floats) == list(parts) and all(type(v) is float for v in floats.values())
    assert reads.count == 1


def test_a_step_the_fp16_scaler_skips_counts_as_skipped() -> None:
    layer = nn.Linear(3, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0**8)
    before = layer.weight.detach().clone()
    loss = layer(torch.full((2, 3), float("inf"))).sum()
    scaler.scale(loss).backward()
    assert not apply_gradients(optimizer, scaler)
    assert torch.equal(layer.weight, before), "the scaler skipped the step"
    optimizer.zero_grad()
    scaler.scale(layer(torch.ones(2, 3)).sum()).backward()
    assert apply_gradients(optimizer, scaler)
    assert not torch.equal(layer.weight, before)
    assert apply_gradients(torch.optim.SGD(layer.parameters(), lr=0.1), torch.amp.GradScaler("cpu", enabled=False))


def test_a_step_the_scaler_skips_counts_as_skipped_in_training(tmp_path: Path, monkeypatch) -> None:
    # fp16 (and so a live scaler) needs CUDA; what the trainer must act on is the scaler's verdict.
    verdicts = iter([True, False, True, True])  # at step 2 the scaler finds inf gradients and takes no step

    def scaler_skips_step_2(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
        return next(verdicts) and apply_gradients(optimizer, scaler)

    class Recording(TrainingCallback):
        def __init__(self) -> None:
            self.seen: list[tuple[float, float]] = []

        def on_step(self, step: int, metrics: Mapping[str, float]) -> None:
            self.seen.append((metrics["skipped"], metrics["lr"]))

    monkeypatch.setattr("workbench.training._trainer.apply_gradients", scaler_skips_step_2)
    config = toy_config(tmp_path / "run", iterations=4, save_every=4,
                        scheduler=SchedulerConfig(milestones=(3,), gamma=0.1))
    recording = Recording()
    result = Trainer(config, data=toy_data(config), model=toy_model(), progress=False, callbacks=[recording]).fit()
    assert result.skipped_steps == 1 and result.checkpoint is not None
    assert [skipped for skipped, _ in recording.seen] == [0.0, 1.0, 0.0, 0.0]
    assert [lr for _, lr in recording.seen] == pytest.approx([1e-2] * 4), "the decay waits for a third update"
    assert load_checkpoint(result.checkpoint)["scheduler"]["last_epoch"] == 3


def test_a_skipped_step_does_not_advance_the_schedule(tmp_path: Path) -> None:
    from test_training_loop import NaNAt

    config = toy_config(tmp_path / "run", iterations=4, nan_policy="skip", save_every=4,
                        scheduler=SchedulerConfig(milestones=(3,), gamma=0.1))
    result = Trainer(config, data=NaNAt(toy_data(config), 2), model=toy_model(), progress=False).fit()
    assert result.skipped_steps == 1
    state = load_checkpoint(result.checkpoint)
    assert state["scheduler"]["last_epoch"] == 3, "three weight updates, three scheduler steps"


@pytest.mark.parametrize("ending", ["completed", "stopped", "pruned"])
def test_cudnn_autotuning_ends_with_the_training_run(tmp_path: Path, monkeypatch, ending: str) -> None:
    # The flag is process-wide; after a CUDA run, evaluation and memory measurements meet many shapes.
    # Setting it needs no GPU, and the run itself is a stand-in that records it.
    during: list[bool] = []

    def run(self: Trainer, ctx: DistributedContext, device: torch.device, resume: bool) -> TrainResult:
        during.append(torch.backends.cudnn.benchmark)
        if ending == "pruned":
            raise _Stop("pruned at step 1")
        return TrainResult(ending, 1, self.output_dir, None)

    monkeypatch.setattr("workbench.training._trainer.resolve_device", lambda name, local_rank: torch.device("cuda", 0))
    monkeypatch.setattr(Trainer, "_fit", run)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    trainer = Trainer(toy_config(tmp_path / "run"), progress=False)
    if ending == "pruned":
        with pytest.raises(_Stop):
            trainer.fit()
    else:
        assert trainer.fit().status == ending
    assert during == [True], "a CUDA run autotunes its convolutions"
    assert torch.backends.cudnn.benchmark is False, "and leaves the process's setting as it found it"


def test_evaluation_during_a_run_does_not_autotune(tmp_path: Path, monkeypatch) -> None:
    # Training batches share one shape; evaluation batches take each sequence's length, and autotuning
    # every new shape would cost more than the evaluation itself.
    during: list[bool] = []

    def evaluator(model: nn.Module, step: int) -> dict[str, float]:
        during.append(torch.backends.cudnn.benchmark)
        return {"rank1": 50.0}

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    trainer = Trainer(toy_config(tmp_path / "run"), model=toy_model(), evaluator=evaluator, progress=False)
    assert trainer._evaluate(trainer.model, 1) == {"rank1": 50.0}
    assert during == [False]
    assert torch.backends.cudnn.benchmark is True, "training goes on autotuned"


_RANK_SCRIPT = """
import sys
from pathlib import Path

sys.path.insert(0, {tests!r})
from training_toys import toy_config, toy_data, toy_model
from workbench.training import Trainer, TrainingCallback


class FailOnRankZero(TrainingCallback):
    def on_step(self, step, metrics):
        if step == 2:
            raise RuntimeError("hook failed on rank 0")


config = toy_config(Path({out!r}), iterations=5, save_every=0)
trainer = Trainer(config, data=toy_data(config), model=toy_model(), progress=False, callbacks=[FailOnRankZero()])
result = trainer.fit()
print("RESULT", result.status, result.step, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_hook_failing_on_rank_0_lets_every_rank_leave(tmp_path: Path) -> None:
    # Rank 0 raised and skipped the barrier the other ranks waited in at the end of fit.
    script = tmp_path / "rank.py"
    script.write_text(_RANK_SCRIPT.format(tests=str(ROOT / "tests" / "training"), out=str(tmp_path / "run")))
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert procs[0].returncode != 0 and "hook failed on rank 0" in outputs[0], outputs[0][-2000:]
    assert procs[1].returncode == 0, outputs[1][-2000:]
    assert re.search(r"RESULT stopped 2", outputs[1]), outputs[1][-2000:]


def test_peak_memory_on_cuda_is_the_steps_own(monkeypatch) -> None:
    # A worker's earlier trial left 5 GiB allocated; the step itself needs 100 MiB on top of its model.
    from workbench.cost import _memory

    mib = 1024 * 1024

    class Allocator:
        allocated = 5 * 1024 * mib
        peak = allocated

    def run_step(model, x, mode, amp) -> None:
        Allocator.peak = max(Allocator.peak, Allocator.allocated + 100 * mib)

    class OnDevice(nn.Linear):
        def to(self, *args, **kwargs):  # stands in for the copy to the GPU: 4 MiB of weights arrive
            Allocator.allocated += 4 * mib
            return self

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: Allocator.allocated)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: Allocator.peak)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats",
                        lambda device=None: setattr(Allocator, "peak", Allocator.allocated))
    monkeypatch.setattr(_memory, "random_input", lambda shape, device: torch.zeros(shape))
    monkeypatch.setattr(_memory, "run_step", run_step)
    result = _memory._measure_cuda(OnDevice(2, 2), (1, 2), torch.device("cuda", 0), "inference", "off")
    assert result.peak_mb == pytest.approx(104.0)
    assert result.baseline_mb == pytest.approx(4.0)


def test_the_torch_floor_admits_no_release_without_the_apis_used() -> None:
    # torch.amp.GradScaler("cuda") and init_process_group(device_id=...) need 2.3;
    # torch.serialization.safe_globals (checkpoint import) needs 2.5.
    needed = (2, 5)
    requirements = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_line = next(r for r in requirements if re.match(r"torch\b", r))
    floor = re.search(r">=\s*(\d+)\.(\d+)", torch_line)
    assert floor is not None, torch_line
    assert (int(floor.group(1)), int(floor.group(2))) >= needed, torch_line
    source = textwrap.dedent((ROOT / "workbench" / "training" / "_trainer.py").read_text())
    assert "torch.amp.GradScaler" in source
