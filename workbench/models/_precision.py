"""Mixed precision for running a model: the autocast context an ``amp`` choice names."""

from __future__ import annotations

import contextlib
from typing import Any

import torch

AMP_CHOICES = ("off", "bf16", "fp16")


def autocast(device: torch.device | str, amp: str) -> contextlib.AbstractContextManager[Any]:
    """``torch.autocast`` for ``amp`` on ``device`` (a null context for ``"off"``).

    ``"bf16"`` works on CUDA and CPU (on a CPU it pays only with bf16 units, AVX512-BF16 or AMX);
    ``"fp16"`` needs CUDA. Anything else is a ``ValueError`` naming the choices.
    """
    device = torch.device(device)
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp={amp!r}: choose one of {', '.join(AMP_CHOICES)}")
    if amp == "off":
        return contextlib.nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("amp='fp16' needs a CUDA device; on CPU use amp='bf16' (autocast) or amp='off'")
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
