"""``TrainConfig``: the run config of one training job, composed of one frozen section per concern."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from workbench.training._losses import LossConfig

if TYPE_CHECKING:
    from torch import nn

#: ``data.path`` value that means "render the built-in synthetic set into the output directory".
BUILTIN_DATA = "synthetic"


def _positive(section: str, **values: float) -> None:
    for name, value in values.items():
        if value <= 0:
            key = f"{section}.{name}" if section else name
            raise ValueError(f"{key} must be > 0, got {value}")


@dataclass(frozen=True)
class DataConfig:
    """Where the training sequences come from and how batches are drawn (P ids x K sequences).

    ``path``: an OpenGait-layout dataset or packed store, or ``"synthetic"`` to render the
    ``synthetic`` preset (a ``SynthConfig`` class method: ``"tiny"``, ``"default"``) into the run's
    output directory. ``packed``: None accepts either layout; true/false insists on one.
    ``cache`` keeps loaded sequences in memory (per worker).
    """

    path: str = BUILTIN_DATA
    partition: str | None = None
    subset: str = "train"
    packed: bool | None = None
    sampler: Literal["fixed_ordered", "fixed_unordered", "all_ordered"] = "fixed_ordered"
    frames: int = 30
    p: int = 8
    k: int = 8
    workers: int = 0
    cache: bool = False
    synthetic: str = "tiny"

    def __post_init__(self) -> None:
        _positive("data", frames=self.frames, p=self.p, k=self.k)
        if self.workers < 0:
            raise ValueError(f"data.workers must be >= 0, got {self.workers}")

    @property
    def batch_size(self) -> int:
        """Sequences per global batch (``p * k``)."""
        return self.p * self.k

    @property
    def is_builtin(self) -> bool:
        """True when the data is the built-in synthetic set rendered on demand."""
        return self.path in ("", BUILTIN_DATA)


@dataclass(frozen=True)
class ModelConfig:
    """The model: a registered name, taken as it is or with its parts cut from a partition tree.

    Any of ``tree`` (hierarchy name or JSON path), ``cuts`` (regions per level, coarse to fine),
    ``channels`` (widths in the model family's order, HSTL's ``[stem, stage1, ...]``) or ``fta`` (HSTL:
    FTA after the first stage) cuts the model from a tree, as its family does it (``ModelFamily.cut``),
    with the family's defaults for what is unset (for ``hstl-small``: ``casia-b-paper``, ``(2, 4)``,
    ``(8, 16, 32)``, FTA on). Classes come from the training set. ``options`` are further keyword
    overrides: spec fields for a registered model, the family's tree options for a tree-cut one.
    """

    name: str = "hstl-small"
    tree: str | None = None
    cuts: tuple[int, ...] | None = None
    channels: tuple[int, ...] | None = None
    fta: bool | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("model.name is empty; name a registered model (see `workbench models list`)")
        if self.from_tree:
            from workbench.models import model_family

            model_family(self.name).check_tree_model(self.name)
        if self.channels is not None:
            _positive("model", **{f"channels[{i}]": c for i, c in enumerate(self.channels)})

    @property
    def from_tree(self) -> bool:
        """True when the model is built from a partition tree rather than taken from the registry as is."""
        return any(v is not None for v in (self.tree, self.cuts, self.channels, self.fta))

    def build(self, num_classes: int) -> nn.Module:
        """The model this config describes, with ``num_classes`` output classes."""
        from workbench.models import TreeCut, build_model, create_model, model_family

        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not self.from_tree:
            return create_model(self.name, num_classes=num_classes, **self.options)
        cut = TreeCut(tree=self.tree, cuts=self.cuts, channels=self.channels, fta=self.fta)
        return build_model(model_family(self.name).cut(self.name, cut, num_classes, self.options))


@dataclass(frozen=True)
class OptimizerConfig:
    """Adam or SGD with weight decay."""

    name: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = False

    def __post_init__(self) -> None:
        _positive("optimizer", lr=self.lr)
        if self.weight_decay < 0:
            raise ValueError(f"optimizer.weight_decay must be >= 0, got {self.weight_decay}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"optimizer.momentum must be in [0, 1), got {self.momentum}")


@dataclass(frozen=True)
class SchedulerConfig:
    """MultiStepLR: multiply the learning rate by ``gamma`` at each milestone iteration."""

    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if list(self.milestones) != sorted(set(self.milestones)) or any(m <= 0 for m in self.milestones):
            raise ValueError(
                f"scheduler.milestones must be increasing positive iterations, got {list(self.milestones)}"
            )
        _positive("scheduler", gamma=self.gamma)


@dataclass(frozen=True)
class TrainConfig:
    """One training run: data, model, optimizer, schedule, losses and the loop's own settings.

    ``amp``: ``"fp16"`` (CUDA only, with a gradient scaler), ``"bf16"`` (autocast on CUDA or CPU; on a
    CPU only worth it with bf16 units, AVX512-BF16 or AMX, where it is 1.5-1.8x faster), ``"auto"``
    (the default: bf16 where the device has bf16 hardware, a GPU of compute capability 8.0 or newer or a
    CPU with AVX512-BF16 or AMX, and float32 elsewhere, where bf16 autocast is emulated and slower) or
    ``"off"`` (float32 everywhere; set it to compare figures across machines bit for bit).
    ``eval_every`` / ``save_every``: iterations between evaluations / checkpoints (0 = only at the end). ``nan_policy``: ``"stop"`` ends the run on a non-finite loss, ``"skip"`` drops that batch
    (a dropped batch, like a step the fp16 gradient scaler skips, does not advance the schedule).
    ``distributed_timeout_minutes``: how long a rank under torchrun waits in a collective while rank 0
    evaluates or saves (NCCL's default, 10 minutes, is shorter than one GREW or OUMVLP evaluation).
    ``nproc_per_node``: processes (DDP ranks, one GPU each on CUDA) that train one study trial together;
    the study's worker starts them itself (``workbench.training.launch_ranks``). ``workbench train``
    starts them too, unless torchrun already did.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    iterations: int = 1000
    eval_every: int = 0
    save_every: int = 500
    keep_last: int = 3
    log_every: int = 10
    amp: Literal["off", "fp16", "bf16", "auto"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    output_dir: str = "runs/train"
    nan_policy: Literal["stop", "skip"] = "stop"
    distributed_timeout_minutes: float = 120.0
    nproc_per_node: int = 1

    def __post_init__(self) -> None:
        _positive("", iterations=self.iterations, keep_last=self.keep_last, log_every=self.log_every)
        for name in ("eval_every", "save_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = only at the end), got {getattr(self, name)}")
        if not self.output_dir:
            raise ValueError("output_dir is empty; name a directory for checkpoints and logs")
        if not self.distributed_timeout_minutes > 0:
            raise ValueError(f"distributed_timeout_minutes must be > 0, got {self.distributed_timeout_minutes}")
        if self.nproc_per_node < 1:
            raise ValueError(f"nproc_per_node must be >= 1 (processes training one run together), "
                             f"got {self.nproc_per_node}")
