"""Training: triplet + cross-entropy losses, the training loop, checkpoints, AMP, DDP under torchrun or launched here.

Example::

    from workbench.training import Trainer, load_train_config

    config = load_train_config("docs/examples/train-synthetic.toml", ["iterations=100"])
    result = Trainer(config).fit()
"""

from __future__ import annotations

from workbench.training._batches import TrainBatch, TrainData, shard_slice, step_rng
from workbench.training._builders import (
    build_optimizer,
    build_scheduler,
    release_memory,
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
    logged_evaluations,
    training_seconds,
)
from workbench.training._checkpoint import (
    CheckpointError,
    capture_rng_state,
    checkpoint_path,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    restore_rng_state,
    save_checkpoint,
)
from workbench.training._config import (
    BUILTIN_DATA,
    DataConfig,
    ModelConfig,
    OptimizerConfig,
    SchedulerConfig,
    TrainConfig,
)
from workbench.training._data import SourceTrainData, build_train_data, builtin_data_dir, render_builtin
from workbench.training._distributed import DistributedContext, context_from_env, gather_with_grad
from workbench.training._inference import import_opengait, load_for_inference, load_train_config
from workbench.training._launch import LaunchResult, RankFailedError, RankTask, launch_ranks, rank_threads
from workbench.training._losses import (
    BatchAllTripletLoss,
    CrossEntropyOutput,
    GaitLoss,
    LossConfig,
    PartCrossEntropyLoss,
    TripletLossOutput,
    pairwise_part_distances,
)
from workbench.training._trainer import Evaluator, NonFiniteLossError, Trainer

__all__ = [
    "BUILTIN_DATA",
    "TRAINING_LOG",
    "BatchAllTripletLoss",
    "CallbackList",
    "CheckpointError",
    "CrossEntropyOutput",
    "DataConfig",
    "DistributedContext",
    "Evaluator",
    "GaitLoss",
    "JsonLinesLog",
    "LaunchResult",
    "LossConfig",
    "ModelConfig",
    "NonFiniteLossError",
    "OptimizerConfig",
    "PartCrossEntropyLoss",
    "ProgressBar",
    "RankFailedError",
    "RankTask",
    "SchedulerConfig",
    "SourceTrainData",
    "TrainBatch",
    "TrainConfig",
    "TrainData",
    "TrainInfo",
    "TrainResult",
    "Trainer",
    "TrainingCallback",
    "TripletLossOutput",
    "build_optimizer",
    "build_scheduler",
    "build_train_data",
    "builtin_data_dir",
    "capture_rng_state",
    "checkpoint_path",
    "context_from_env",
    "gather_with_grad",
    "import_opengait",
    "latest_checkpoint",
    "launch_ranks",
    "list_checkpoints",
    "load_checkpoint",
    "load_for_inference",
    "load_train_config",
    "logged_evaluations",
    "pairwise_part_distances",
    "prune_checkpoints",
    "rank_threads",
    "release_memory",
    "render_builtin",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
    "shard_slice",
    "step_rng",
    "training_seconds",
]
