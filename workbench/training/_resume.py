"""A run's training state: what a checkpoint holds beside the weights, and how a run takes it back.

The file itself (atomic writes, names, pruning, RNG capture) is ``_checkpoint``; the loop that saves
and resumes is ``_trainer``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from workbench.config import to_dict
from workbench.training._checkpoint import CHECKPOINT_FORMAT, CheckpointError, restore_rng_state
from workbench.training._config import TrainConfig
from workbench.training._distributed import DistributedContext

logger = logging.getLogger(__name__)

#: ``(step, metrics)`` of every evaluation so far, kept in the checkpoint so a resumed run reports them all.
Evaluations = list[tuple[int, dict[str, float]]]


@dataclass(frozen=True)
class LoopParts:
    """What the training loop updates: the bare model (not its DDP wrapper) and its optimiser, schedule and
    gradient scaler."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler


def training_state(parts: LoopParts, config: TrainConfig, *, step: int, rng: list[Any], world_size: int,
                   num_classes: int, skipped: int, evaluations: Evaluations) -> dict[str, Any]:
    """The checkpoint of a run after ``step``: weights, optimiser, schedule, scaler, every rank's RNG
    streams (``rng``, in rank order), the data order's position, the config and the evaluations so far."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model": parts.model.state_dict(),
        "optimizer": parts.optimizer.state_dict(),
        "scheduler": parts.scheduler.state_dict(),
        "scaler": parts.scaler.state_dict(),
        "iteration": step,
        "rng": rng,
        "sampler": {"seed": config.seed, "step": step, "world_size": world_size},
        "config": to_dict(config),
        "num_classes": num_classes,
        "skipped_steps": skipped,
        "evaluations": [[s, dict(m)] for s, m in evaluations],
    }


def restore_training_state(state: dict[str, Any], parts: LoopParts, config: TrainConfig, ctx: DistributedContext,
                           num_classes: int, output_dir: Path) -> tuple[int, int, Evaluations]:
    """Load ``state`` (from ``training_state``) into ``parts``; returns the step it was saved after, the
    skipped steps and the evaluations so far. ``CheckpointError`` names the run and what does not match."""
    where = f"{output_dir} (step {state.get('iteration')})"
    if "optimizer" not in state:
        raise CheckpointError(
            f"{where}: the checkpoint holds model weights only (imported or exported), not a training state "
            "to resume; start the run in another output_dir"
        )
    if state.get("num_classes", num_classes) != num_classes:
        raise CheckpointError(
            f"{where}: checkpoint has {state['num_classes']} classes, the data {num_classes}; "
            "resume with the same data.path and partition"
        )
    try:
        parts.model.load_state_dict(state["model"])
    except RuntimeError as exc:
        raise CheckpointError(f"{where}: model does not match the checkpoint; resume with its config ({exc})") from exc
    parts.optimizer.load_state_dict(state["optimizer"])
    parts.scheduler.load_state_dict(state["scheduler"])
    if state.get("scaler"):
        parts.scaler.load_state_dict(state["scaler"])
    sampler = state.get("sampler", {})
    if sampler.get("seed", config.seed) != config.seed:
        logger.warning("%s: seed changed from %s to %s; the data order will differ", where,
                       sampler.get("seed"), config.seed)
    rng = state.get("rng") or []
    if len(rng) == ctx.world_size:
        restore_rng_state(rng[ctx.rank])
    else:
        logger.warning("%s: saved with %d process(es), now %d; RNG streams reseeded", where, len(rng),
                       ctx.world_size)
        torch.manual_seed(config.seed + 1_000_003 * ctx.rank + int(state["iteration"]))
    evaluations = [(int(s), {k: float(v) for k, v in m.items()}) for s, m in state.get("evaluations", [])]
    return int(state["iteration"]), int(state.get("skipped_steps", 0)), evaluations


__all__ = ["Evaluations", "LoopParts", "restore_training_state", "training_state"]
