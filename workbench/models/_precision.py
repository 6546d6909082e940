"""Mixed precision for running a model: the autocast context an ``amp`` choice names."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

AMP_CHOICES = ("off", "bf16", "fp16", "auto")


def check_amp(amp: str) -> str:
    """``amp`` if it names a precision, else a ``ValueError`` naming the choices."""
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r}: choose one of {', '.join(AMP_CHOICES)}")
    return amp


#: The first CUDA compute capability with bf16 tensor cores (Ampere).
_CUDA_BF16_CAPABILITY = (8, 0)


def native_bf16(device: torch.device | str) -> bool:
    """Whether bf16 runs on bf16 hardware on ``device``: a CUDA device of compute capability 8.0 or
    newer, or a CPU with AVX512-BF16 or AMX. Elsewhere bf16 autocast is emulated and slower than float32.

    ``torch.cuda.is_bf16_supported()`` is not used: by default it counts emulated bf16 (V100, T4)
    as supported, and it asks about the current device rather than ``device``.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False
        index = device.index if device.index is not None else torch.cuda.current_device()
        return tuple(torch.cuda.get_device_capability(index)) >= _CUDA_BF16_CAPABILITY
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_amp(amp: str, device: torch.device | str) -> str:
    """The precision ``amp`` means on ``device``: ``"auto"`` is ``"bf16"`` where the device has bf16
    hardware (``native_bf16``) and ``"off"`` elsewhere; the other choices stand as they are."""
    if check_amp(amp) != "auto":
        return amp
    return "bf16" if native_bf16(device) else "off"


def autocast(device: torch.device | str, amp: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``amp`` on ``device`` (a null context for ``"off"``).

    ``"bf16"`` works on CUDA and CPU (on a CPU it pays only with bf16 units, AVX512-BF16 or AMX);
    ``"fp16"`` needs CUDA; ``"auto"`` picks bf16 where it runs on bf16 hardware (see ``resolve_amp``).
    Anything else is a ``ValueError`` naming the choices.
    """
    device = torch.device(device)
    amp = resolve_amp(amp, device)
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; on CPU use amp='bf16' (autocast) or amp='off'")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
