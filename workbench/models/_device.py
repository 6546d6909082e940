"""Where a model runs: the one reading of a ``device`` choice that training, evaluation and cost share."""

from __future__ import annotations

import torch

DEVICE_HELP = "cpu, cuda, cuda:N or auto"


def resolve_device(device: str | torch.device = "auto", local_rank: int | None = None) -> torch.device:
    """Turn ``cpu``, ``cuda``, ``cuda:N`` or ``auto`` into a usable device; ``auto`` prefers CUDA.

    ``local_rank`` (a process of a torchrun job) picks that CUDA device for ``auto`` and ``cuda``;
    without it they mean the current CUDA device. Errors name the choice and the fix.
    """
    if isinstance(device, str) and device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device={device!r}: expected {DEVICE_HELP}") from exc
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device={device!r}: only cpu and cuda are supported")
    if resolved.type == "cpu":
        return resolved
    if not torch.cuda.is_available():
        raise ValueError(f"device={device!r}: CUDA is not available on this machine; use --device cpu or auto")
    if resolved.index is None and local_rank is not None:
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise ValueError(f"LOCAL_RANK={local_rank} but only {count} CUDA device(s); start fewer processes")
        resolved = torch.device("cuda", local_rank)
    return resolved
