"""torchrun support: rank discovery from the environment, process group set-up, gathering with gradient."""

from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and logs."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer; torchrun sets it") from exc


def context_from_env() -> DistributedContext:
    """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (set by torchrun); a plain process is rank 0 of 1."""
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local = _env_int("LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"inconsistent torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return DistributedContext(rank=rank, world_size=world, local_rank=local)


#: How long a rank waits in a collective by default. Rank 0 alone evaluates, renders built-in data and
#: saves while the others wait in their next collective; NCCL's own default (10 minutes) is shorter
#: than one evaluation of GREW or OUMVLP.
DEFAULT_TIMEOUT_MINUTES = 120.0


def init_process_group(context: DistributedContext, device: torch.device,
                       timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES, store: dist.Store | None = None) -> bool:
    """Join the process group (NCCL on CUDA, gloo on CPU) unless single-process or already joined.

    The ranks meet through ``store`` when given (``launch_ranks`` hosts one), else through torchrun's
    ``MASTER_ADDR`` and ``MASTER_PORT``.

    On CUDA the rank is bound to its own GPU (``device``, from ``LOCAL_RANK``) before the group
    exists, and the group is told that device: otherwise NCCL guesses it from the global rank, which
    is wrong on every node but the first when a node runs fewer processes than it has GPUs.
    Returns True when this call created the group (and so should destroy it).
    """
    if not context.enabled or dist.is_initialized():
        return False
    options: dict[str, Any] = {"timeout": timedelta(minutes=timeout_minutes)}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        options["device_id"] = device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if store is not None:
        options["store"] = store
    dist.init_process_group(backend=backend, rank=context.rank, world_size=context.world_size, **options)
    return True


def zero_gradient_term(tensor: torch.Tensor) -> torch.Tensor:
    """An exact zero that depends on ``tensor``: added to a loss, it gives ``tensor``'s producers zero gradients.

    DDP waits for a gradient of every parameter it wraps; a head whose loss is off still needs one.
    The sum runs in float32 with non-finite values zeroed, so fp16 logits that overflow (a sum past
    65504 is inf, and inf times zero is NaN) cannot turn the loss into NaN.
    """
    return torch.nan_to_num(tensor.float(), nan=0.0, posinf=0.0, neginf=0.0).sum() * 0.0


# How long a collective may keep a tensor after it returned; far beyond the microseconds it takes.
RELEASE_TIMEOUT_S = 2.0


def await_release(*tensors: torch.Tensor) -> None:
    """Hold ``tensors`` until the gloo group's worker threads have dropped their own references to them.

    A synchronous gloo collective returns once its work is marked done; the worker thread drops the work
    a moment later. Had Python let go of a tensor first, that late drop has to take the GIL, and when it
    falls after the interpreter began shutting down the rank aborts ("terminate called without an active
    exception"), e.g. a training process that exits right after ``fit``. Waiting here makes the drop an
    atomic decrement. NCCL keeps works for its watchdog, so this applies to gloo only.
    """
    if not dist.is_initialized() or dist.get_backend() != "gloo" or not hasattr(torch.Tensor, "_use_count"):
        return
    deadline = time.monotonic() + RELEASE_TIMEOUT_S
    while any(t._use_count() > 1 for t in tensors) and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0)  # releases the GIL; the worker needs none to drop a reference Python still shares


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every rank along dim 0; gradient flows into the local part only."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    sent = tensor.detach().contiguous()
    dist.all_gather(parts, sent)
    await_release(sent, *parts)
    parts[dist.get_rank()] = tensor
    return torch.cat(parts, dim=0)


def gather_objects(obj: Any, device: torch.device) -> list[Any]:
    """Every rank's picklable ``obj``, in rank order (``[obj]`` without a process group).

    Like ``dist.all_gather_object``, but the byte buffers are held until the group has let go of them.
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    world = dist.get_world_size()
    payload = torch.frombuffer(bytearray(pickle.dumps(obj)), dtype=torch.uint8).to(device)
    size = torch.tensor([payload.numel()], dtype=torch.int64, device=device)
    sizes = [torch.empty_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    await_release(size, *sizes)
    longest = max(int(s.item()) for s in sizes)
    padded = torch.zeros(longest, dtype=torch.uint8, device=device)
    padded[: payload.numel()] = payload
    buffers = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(buffers, padded)
    await_release(padded, *buffers)
    # The peers are this job's own ranks, which run the same code: their pickles are as trusted as ours.
    return [pickle.loads(b[: int(s.item())].cpu().numpy().tobytes()) for b, s in zip(buffers, sizes, strict=True)]


def all_true(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds on every rank (just ``flag`` without a process group)."""
    if not dist.is_initialized():
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    await_release(value)
    return bool(value.item())


def any_true(flag: bool, device: torch.device) -> bool:
    """True when ``flag`` holds on some rank."""
    return not all_true(not flag, device)


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()
