"""The training loop: AMP, NaN policy, evaluation hooks, atomic checkpoints, resume and DDP."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from workbench.config import dump_config
from workbench.models import autocast, resolve_device
from workbench.training._batches import TrainBatch, TrainData
from workbench.training._builders import (
    build_optimizer,
    build_scheduler,
    seed_everything,
)
from workbench.training._callbacks import (
    TRAINING_LOG,
    CallbackList,
    JsonLinesLog,
    ProgressBar,
    TrainInfo,
    TrainingCallback,
    TrainResult,
)
from workbench.training._checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from workbench.training._config import TrainConfig
from workbench.training._distributed import (
    DistributedContext,
    any_true,
    barrier,
    context_from_env,
    gather_objects,
    gather_with_grad,
    init_process_group,
    zero_gradient_term,
)
from workbench.training._losses import GaitLoss
from workbench.training._resume import Evaluations, LoopParts, restore_training_state, training_state

logger = logging.getLogger(__name__)

#: ``evaluator(model, step) -> metrics``; called on rank 0 with the bare model in eval mode.
Evaluator = Callable[[nn.Module, int], Mapping[str, float]]


def apply_gradients(optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler) -> bool:
    """Step the optimizer through the gradient scaler; False when the scaler skipped the step.

    With fp16 the scaler skips a step whose gradients hold inf or NaN and lowers its scale; that
    step changed no weight and must count as skipped. Without a scaler every step is taken.
    """
    if not scaler.is_enabled():
        optimizer.step()
        return True
    # The scale stays on the device until the comparison: one host synchronisation per step, not two.
    scale = scaler._get_scale_async()
    assert scale is not None, "scaler.scale(loss) runs before the step"
    before = scale.clone()
    scaler.step(optimizer)
    scaler.update()
    return bool((scaler._get_scale_async() >= before).item())  # type: ignore[operator]


def _host_floats(values: Mapping[str, Any]) -> dict[str, float]:
    """Loss parts as Python floats, with one device-to-host copy for all the tensors among them."""
    tensors = {k: v for k, v in values.items() if isinstance(v, torch.Tensor)}
    out = {k: float(v) for k, v in values.items() if k not in tensors}
    if tensors:
        stacked = torch.stack([t.detach().float().reshape(()) for t in tensors.values()])
        out.update(zip(tensors, stacked.tolist(), strict=True))
    return {k: out[k] for k in values}


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite and ``nan_policy`` is ``"stop"``."""


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class Trainer:
    """Train one model on P x K batches with triplet + cross-entropy losses.

    ``data`` and ``model`` default to what ``config`` names (the built-in synthetic set is rendered
    into ``output_dir`` when needed). Hooks see progress through ``callbacks``; ``evaluator`` runs at
    every ``eval_every`` steps and at the end. Under torchrun each process trains its shard with DDP
    (NCCL on CUDA, gloo on CPU); only rank 0 runs hooks and writes files.

    AMP: ``fp16`` autocasts on CUDA with a ``GradScaler`` (steps with non-finite gradients are skipped
    by the scaler); ``bf16`` autocasts on CUDA and on CPU; ``fp16`` on CPU is an error.
    """

    def __init__(
        self,
        config: TrainConfig,
        *,
        data: TrainData | None = None,
        model: nn.Module | None = None,
        evaluator: Evaluator | None = None,
        callbacks: Sequence[TrainingCallback] = (),
        progress: bool = True,
        context: DistributedContext | None = None,
    ) -> None:
        self.config = config
        self.data = data
        self.model = model
        self.evaluator = evaluator
        self.callbacks = list(callbacks)
        self.progress = progress
        self.context = context
        self.output_dir = Path(config.output_dir)

    def fit(self, resume: bool | str | Path = False) -> TrainResult:
        """Run until ``config.iterations``; ``resume=True`` continues from the newest checkpoint, a path from that file."""
        ctx = self.context = self.context or context_from_env()
        device = resolve_device(self.config.device, ctx.local_rank)
        created = init_process_group(ctx, device, self.config.distributed_timeout_minutes)
        benchmark = torch.backends.cudnn.benchmark
        if device.type == "cuda":
            # Training batches have one shape (frames x height x width), so cuDNN's autotuner pays. The
            # flag is process-wide, and work after the run (evaluating padded lengths, measuring memory)
            # meets many shapes, each autotuned anew: the process gets its own setting back at the end.
            torch.backends.cudnn.benchmark = True
        try:
            result = self._fit(ctx, device, resume)
            if created and result.status != "stopped":
                # No rank tears the group down (rank 0 also hosts its store) while another still talks.
                # A stopped run's ranks left together from the collective that stopped them.
                barrier()
            return result
        finally:
            torch.backends.cudnn.benchmark = benchmark
            if created and dist.is_initialized():
                dist.destroy_process_group()

    # -- set-up -----------------------------------------------------------------------------------

    def _prepare(self, ctx: DistributedContext, device: torch.device) -> tuple[TrainData, nn.Module]:
        seed_everything(self.config.seed)
        data = self.data
        if data is None:
            from workbench.training._data import build_train_data

            data = build_train_data(self.config, ctx, device)
        model = self.model
        if model is None:
            model = self.config.model.build(data.num_classes)
        self.data, self.model = data, model
        return data, model

    def _resume_state(self, resume: bool | str | Path) -> dict[str, Any] | None:
        if resume is False:
            existing = list_checkpoints(self.output_dir)
            if existing:
                raise CheckpointError(
                    f"{self.output_dir}: already holds checkpoints (newest {existing[-1].name}); pass "
                    "--resume to continue that run or choose another output_dir"
                )
            return None
        if resume is not True:
            return load_checkpoint(Path(resume))
        candidates = list_checkpoints(self.output_dir)
        for path in reversed(candidates):
            try:
                return load_checkpoint(path)
            except CheckpointError as exc:
                logger.warning("skipping unreadable checkpoint: %s", exc)
        if candidates:
            raise CheckpointError(f"{self.output_dir}: no readable checkpoint to resume from")
        logger.info("%s: no checkpoint yet, starting from step 0", self.output_dir)
        return None

    # -- the loop ---------------------------------------------------------------------------------

    def _fit(self, ctx: DistributedContext, device: torch.device, resume: bool | str | Path) -> TrainResult:
        cfg = self.config
        state = self._resume_state(resume)
        data, bare = self._prepare(ctx, device)
        bare.to(device)
        optimizer = build_optimizer(bare.parameters(), cfg.optimizer)
        scheduler = build_scheduler(optimizer, cfg.scheduler)
        scaler = torch.amp.GradScaler(device.type, enabled=cfg.amp == "fp16")
        autocast(device, cfg.amp)  # validate the AMP choice before any work
        parts = LoopParts(bare, optimizer, scheduler, scaler)
        start, skipped = 0, 0
        evaluations: Evaluations = []
        if state is not None:
            start, skipped, evaluations = restore_training_state(state, parts, cfg, ctx, data.num_classes,
                                                                 self.output_dir)
        else:
            # Same initial weights on every rank, different dropout/augmentation streams afterwards.
            torch.manual_seed(cfg.seed + 1_000_003 * ctx.rank)
        model: nn.Module = bare
        if ctx.enabled:
            if device.type == "cuda":
                model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            partial = cfg.loss.triplet_weight == 0 or cfg.loss.ce_weight == 0
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=partial,
            )
        loss_fn = GaitLoss(cfg.loss)
        hooks = self._hooks(ctx)
        if ctx.is_main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            dump_config(cfg, self.output_dir / "config.toml")
        info = TrainInfo(
            config=cfg, output_dir=self.output_dir, start_step=start, iterations=cfg.iterations,
            num_classes=data.num_classes, parameters=sum(p.numel() for p in bare.parameters()),
            device=str(device), world_size=ctx.world_size, batch_size=cfg.data.batch_size,
        )
        t_start = time.perf_counter()
        last_ckpt = latest_checkpoint(self.output_dir) if start else None
        metrics: dict[str, float] = {}
        stream = data.batches(start, ctx)
        try:
            if ctx.is_main:
                hooks.on_train_start(info)
            for step in range(start + 1, cfg.iterations + 1):
                metrics, ok = self._step(step, model, loss_fn, optimizer, scaler, stream, device, ctx)
                if ok:
                    scheduler.step()
                else:  # the weights did not change, so neither does the schedule
                    skipped += 1
                last = step == cfg.iterations
                path = None
                if last or (cfg.save_every and step % cfg.save_every == 0):
                    path = self._save(step, parts, ctx, device, data.num_classes, skipped, evaluations)
                    last_ckpt = path or last_ckpt
                failure: BaseException | None = None
                if ctx.is_main:
                    try:
                        hooks.on_step(step, metrics)
                        if path is not None:
                            hooks.on_checkpoint(step, path)
                        if self.evaluator is not None and (last or (cfg.eval_every and step % cfg.eval_every == 0)):
                            scores = self._evaluate(bare, step)
                            evaluations.append((step, scores))
                            hooks.on_evaluation(step, scores)
                    except BaseException as exc:  # a hook (e.g. a pruner) asked to stop
                        failure = exc
                # Every rank takes part, so every rank leaves at this step, the one whose hook failed
                # included, and none has a collective left to wait in.
                if any_true(failure is not None, device):
                    if failure is not None:
                        try:
                            raise failure
                        finally:
                            # The exception's traceback holds this frame; a local naming the exception
                            # would close a cycle that keeps the model, optimizer state and gradients
                            # alive until a full garbage collection (every pruned trial ends here).
                            failure = None
                    return TrainResult("stopped", step, self.output_dir, last_ckpt, metrics, evaluations, skipped,
                                       time.perf_counter() - t_start)
            result = TrainResult("completed", max(start, cfg.iterations), self.output_dir, last_ckpt, metrics,
                                 evaluations, skipped, time.perf_counter() - t_start)
            if ctx.is_main:
                hooks.on_train_end(result)
            return result
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            for hook in hooks.callbacks:
                if isinstance(hook, ProgressBar):
                    hook.close()

    def _hooks(self, ctx: DistributedContext) -> CallbackList:
        if not ctx.is_main:
            return CallbackList()
        builtin: list[TrainingCallback] = [JsonLinesLog(self.output_dir / TRAINING_LOG, self.config.log_every)]
        if self.progress:
            builtin.insert(0, ProgressBar())
        return CallbackList([*builtin, *self.callbacks])

    def _step(
        self,
        step: int,
        model: nn.Module,
        loss_fn: GaitLoss,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        stream: Iterator[TrainBatch],
        device: torch.device,
        ctx: DistributedContext,
    ) -> tuple[dict[str, float], bool]:
        cfg = self.config
        tic = time.perf_counter()
        batch = next(stream)
        seqs = batch.seqs.to(device, non_blocking=True)
        labels = batch.labels.to(device, non_blocking=True)
        seq_len = batch.seqL.to(device, non_blocking=True) if batch.seqL is not None else None
        model.train()
        with autocast(device, cfg.amp):
            out = model(seqs, seq_len)
        embeddings, logits = out.embeddings.float(), out.logits.float()
        extra: dict[str, Any] = {}
        view_logits = getattr(out, "view_logits", None)
        if view_logits is not None and batch.views is not None:
            extra = {"view_logits": view_logits.float(), "views": batch.views.to(device, non_blocking=True)}
        if ctx.enabled and cfg.loss.triplet_weight > 0:
            extra |= {
                "triplet_embeddings": gather_with_grad(embeddings),
                "triplet_labels": gather_with_grad(labels),
                "triplet_scale": float(ctx.world_size),
            }
        loss, parts = loss_fn(embeddings, logits, labels, **extra)
        if ctx.enabled and view_logits is not None and not (extra.get("views") is not None and cfg.loss.view_weight > 0):
            # DDP waits for a gradient of every parameter it wraps: a view head whose loss is off (or
            # whose data has no views) gets an exact zero one instead of stalling the reduction.
            loss = loss + zero_gradient_term(view_logits)
        optimizer.zero_grad(set_to_none=True)
        finite = not any_true(not bool(torch.isfinite(loss).item()), device)
        if finite:
            scaler.scale(loss).backward()
            finite = apply_gradients(optimizer, scaler)
        elif cfg.nan_policy == "stop":
            raise NonFiniteLossError(
                f"non-finite loss ({loss.item()}) at step {step}; the last good checkpoint "
                f"in {self.output_dir} is intact. Lower optimizer.lr, try amp='off', or set nan_policy='skip'"
            )
        else:
            logger.warning("non-finite loss (%s): batch skipped (nan_policy='skip')", loss.item())
        seconds = max(time.perf_counter() - tic, 1e-9)
        metrics = _host_floats(parts)
        metrics["lr"] = float(optimizer.param_groups[0]["lr"])
        metrics["skipped"] = 0.0 if finite else 1.0
        metrics["sequences_per_second"] = cfg.data.batch_size / seconds
        return metrics, finite

    def _evaluate(self, model: nn.Module, step: int) -> dict[str, float]:
        assert self.evaluator is not None
        was_training = model.training
        autotune = torch.backends.cudnn.benchmark
        model.eval()
        # Evaluation meets a new input shape with every sequence length: with the autotuner on, cuDNN
        # would time its kernels for each one, and evaluating would take longer than training between.
        torch.backends.cudnn.benchmark = False
        try:
            with torch.no_grad():
                scores = self.evaluator(model, step)
        finally:
            torch.backends.cudnn.benchmark = autotune
            model.train(was_training)
        return {k: float(v) for k, v in scores.items()}

    # -- checkpoints ------------------------------------------------------------------------------

    def _save(self, step: int, parts: LoopParts, ctx: DistributedContext, device: torch.device, num_classes: int,
              skipped: int, evaluations: Evaluations) -> Path | None:
        rng = gather_objects(capture_rng_state(), device)  # every rank takes part
        path = None
        if ctx.is_main:
            state = training_state(parts, self.config, step=step, rng=rng, world_size=ctx.world_size,
                                   num_classes=num_classes, skipped=skipped, evaluations=evaluations)
            path = save_checkpoint(state, checkpoint_path(self.output_dir, step))
            prune_checkpoints(self.output_dir, self.config.keep_last)
        barrier()
        return path
