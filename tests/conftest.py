"""Suite-wide settings: small thread pools, a headless plotting backend, deterministic seeds."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest


@pytest.fixture(autouse=True)
def _torch_threads() -> None:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(2)
