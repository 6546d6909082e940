"""Build the device, optimizer and scheduler of a run from its config (``ModelConfig.build`` builds its model)."""

from __future__ import annotations

import gc
import random
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from workbench.training._config import OptimizerConfig, SchedulerConfig


def release_memory() -> None:
    """Free what finished work left behind: collect garbage, then return cached CUDA blocks to the driver.

    Call it after each trial of a study and each seed it trains: several workers may share one GPU, and
    blocks one trial's allocator still caches are memory the next trial (or another worker) cannot have.
    """
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def build_optimizer(parameters: Iterable[nn.Parameter], config: OptimizerConfig) -> torch.optim.Optimizer:
    """Adam or SGD over the trainable parameters."""
    params = [p for p in parameters if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    if config.name == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay, nesterov=config.nesterov)
    raise ValueError(f"optimizer.name {config.name!r} is not one of 'adam', 'sgd'")


def build_scheduler(optimizer: torch.optim.Optimizer, config: SchedulerConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """MultiStepLR stepped once per iteration."""
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
