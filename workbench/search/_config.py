"""``StudyConfig``: one study file in ``studies/`` (TOML) describing data, candidates, space, goals and budget."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.config import ConfigError, from_dict, read_mapping, to_dict
from workbench.hierarchy import PAPER_CUTS
from workbench.training import TrainConfig

#: Metrics a study may optimise; ``rank1`` is the protocol's headline (mean of NM/BG/CL on CASIA-B
#: style protocols), the others come from the cost module.
COST_METRICS = ("gflops", "params_m", "latency_ms", "peak_memory_mb")


@dataclass(frozen=True)
class StudySection:
    """Identity of the study in its storage, and where its files go."""

    name: str = ""
    description: str = ""
    project_dir: str = "workbench-home"

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", self.name or ""):
            raise ValueError(f"study.name {self.name!r} must be letters, digits, '-', '_' or '.'")


#: Share of the training subjects a study holds out for validation when ``data.validation`` is unset.
DEFAULT_VALIDATION = 0.2


@dataclass(frozen=True)
class StudyData:
    """Training and evaluation data: ``synthetic`` (rendered on demand) or a dataset path.

    ``eval_frames`` caps each evaluated sequence to its first frames (quick studies); unset, every
    frame is used, as the published protocols do. ``validation_frames`` caps the validation evaluations
    alone (those during training), so a study can follow its trials cheaply and still test on every frame;
    unset, validation takes ``eval_frames``.

    ``validation`` holds subjects out of the partition's training subjects: a fraction (drawn with
    ``validation_seed``; 0.2 when unset) or an explicit id list. Trials train on the rest and are scored,
    pruned and selected on these; the test subjects are read only by ``workbench study test``.
    ``validation_subjects`` (rendered sets only) renders that many more subjects and holds out exactly
    those instead, so every rendered training subject trains and the validation gallery can be sized
    like the test one: a handful of validation subjects sits near 100 % rank-1 and tells nothing apart.

    ``synthetic_seed`` seeds the rendered set (bodies, gaits, noise); it is separate from
    ``train.seed`` so that fresh training seeds train on the same subjects. ``test_subjects`` renders
    that many test subjects in place of the named set's own number: subjects are seeded one by one, so
    the training subjects (and the first test subjects) stay exactly as they were.
    """

    source: str = "synthetic"
    synthetic: Literal["small", "quick", "default"] = "quick"
    protocol: str = "synthetic"
    partition: str | None = None
    eval_batch_size: int = 16
    eval_frames: int | None = None
    validation_frames: int | None = None
    validation: float | tuple[str, ...] | None = None
    validation_seed: int = 0
    synthetic_seed: int = 0
    test_subjects: int | None = None
    validation_subjects: int | None = None

    def __post_init__(self) -> None:
        for name in ("eval_frames", "validation_frames"):
            frames = getattr(self, name)
            if frames is not None and (isinstance(frames, bool) or frames < 1):
                raise ValueError(f"data.{name} = {frames!r}: give a whole number of frames >= 1, or leave it "
                                 "out to evaluate every frame")
        if self.validation_subjects is not None:
            if isinstance(self.validation_subjects, bool) or self.validation_subjects < 2:
                raise ValueError(
                    f"data.validation_subjects = {self.validation_subjects!r}: give a whole number of validation "
                    "subjects >= 2 (with one, rank-1 is trivially 100 %)"
                )
            if not self.is_synthetic:
                raise ValueError(
                    f"data.validation_subjects only renders subjects of a synthetic set; for the dataset at "
                    f"data.source {self.source!r} hold training subjects out with data.validation (a fraction "
                    "or an id list) instead"
                )
            if self.validation is not None:
                raise ValueError(
                    f"data.validation = {self.validation!r} and data.validation_subjects both choose the "
                    "validation subjects; keep one (validation_subjects holds out exactly the rendered ones)"
                )
        if self.test_subjects is not None:
            if isinstance(self.test_subjects, bool) or self.test_subjects < 1:
                raise ValueError(f"data.test_subjects = {self.test_subjects!r}: give a whole number of test subjects >= 1")
            if not self.is_synthetic:
                raise ValueError(
                    f"data.test_subjects only sizes a rendered synthetic set; the dataset at data.source "
                    f"{self.source!r} has its own test subjects (remove data.test_subjects)"
                )
        if isinstance(self.validation, float) and not 0.0 < self.validation < 1.0:
            raise ValueError(
                f"data.validation = {self.validation}: give a fraction strictly between 0 and 1 of the training "
                "subjects (e.g. 0.2), or a list of training subject ids; selection needs held-out subjects"
            )
        if isinstance(self.validation, tuple) and not self.validation:
            raise ValueError("data.validation: the id list is empty; list training subject ids or give a fraction")

    @property
    def is_synthetic(self) -> bool:
        return self.source in ("", "synthetic")

    @property
    def frames_for_validation(self) -> int | None:
        """How many first frames of each sequence the validation evaluations read (None: every frame)."""
        return self.validation_frames if self.validation_frames is not None else self.eval_frames

    @property
    def validation_fraction(self) -> float:
        """The share of training subjects held out when ``validation`` is a fraction or unset."""
        return self.validation if isinstance(self.validation, float) else DEFAULT_VALIDATION


@dataclass(frozen=True)
class DiscoverySettings:
    """Trees to discover before the study starts: every descriptor x linkage pair."""

    descriptors: tuple[str, ...] = ()
    linkages: tuple[str, ...] = ()
    metric: str = "euclidean"
    max_sequences: int = 400


@dataclass(frozen=True)
class HierarchyCandidates:
    """Partition trees the study chooses among: preset names, tree files, and trees to discover."""

    presets: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    discover: DiscoverySettings = field(default_factory=DiscoverySettings)


@dataclass(frozen=True)
class SearchSpace:
    """What each trial chooses. A single value pins a choice; more than one makes it searchable.

    ``models`` lists registered model families to choose among (empty: ``train.model.name``).
    ``stage_cuts[i]`` lists the region counts allowed at level ``i`` (coarse to fine); each model's
    family decides what it takes from the levels (``ModelFamily.cut``: HSTL one ARME stage per level,
    GaitGS strips from the first and parts from the last, GaitBase parts from the last). A trial's cuts
    must grow from level to level, so cuts from one tree nest. ``channels`` are in the family's order;
    a model listed with its own ``[models.<name>.model] channels`` takes those instead (a study mixing
    families whose widths differ in number gives each its own).
    """

    models: tuple[str, ...] = ()
    stage_cuts: tuple[tuple[int, ...], ...] = tuple((k,) for k in PAPER_CUTS)
    channels: tuple[tuple[int, ...], ...] = ((8, 16, 32),)
    lr: tuple[float, float] = (1e-3, 1e-3)
    frames: tuple[int, ...] = (30,)
    fta: tuple[bool, ...] = (True,)

    def __post_init__(self) -> None:
        if not self.stage_cuts or any(not c for c in self.stage_cuts):
            raise ValueError("space.stage_cuts needs at least one stage with at least one region count")
        if self.lr[0] <= 0 or self.lr[1] < self.lr[0]:
            raise ValueError(f"space.lr must be [low, high] with 0 < low <= high, got {list(self.lr)}")
        for name in ("channels", "frames", "fta"):
            if not getattr(self, name):
                raise ValueError(f"space.{name} needs at least one value")


@dataclass(frozen=True)
class Objective:
    """One optimisation goal: a metric name and its direction."""

    metric: str = "rank1"
    direction: Literal["maximize", "minimize"] = "maximize"


@dataclass(frozen=True)
class Budget:
    """How much work: trials in total (across workers), an optional wall-clock limit, iterations per trial.

    ``seeds`` trains every sampled configuration that many times, on the training seeds
    ``train.seed``, ``train.seed + 1``, ...: the trial's objective is their mean, and configurations
    share the seeds so that they can be compared seed by seed. ``max_failed`` stops the study (non-zero
    exit) once that many trials have failed (0: never); the same error twice in a row stops it at once.
    """

    trials: int = 8
    timeout_minutes: float | None = None
    iterations: int = 60
    eval_every: int = 30
    seeds: int = 1
    max_failed: int = 5

    def __post_init__(self) -> None:
        if self.trials < 1 or self.iterations < 1:
            raise ValueError("budget.trials and budget.iterations must be >= 1")
        if self.seeds < 1:
            raise ValueError(f"budget.seeds = {self.seeds}: train each configuration at least once")
        if self.max_failed < 0:
            raise ValueError(f"budget.max_failed = {self.max_failed}: give 0 (never stop) or a positive count")


@dataclass(frozen=True)
class SamplerSettings:
    """Optuna sampler: ``tpe``, ``random``, ``nsga2``, ``gp`` or ``grid`` (every combination once); seeded."""

    name: Literal["tpe", "random", "nsga2", "gp", "grid"] = "tpe"
    seed: int = 0
    startup_trials: int = 4


@dataclass(frozen=True)
class PrunerSettings:
    """Optuna pruner for single-objective studies (multi-objective studies cannot prune).

    ``threshold`` prunes a trial whose intermediate value falls below ``lower`` (or above ``upper``).
    """

    name: Literal["median", "hyperband", "threshold", "none"] = "median"
    startup_trials: int = 3
    warmup_steps: int = 0
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class StorageSettings:
    """Optuna storage URL (empty: SQLite under the project dir) and liveness settings for workers."""

    url: str = ""
    heartbeat_seconds: float = 5.0
    grace_seconds: float = 60.0


@dataclass(frozen=True)
class TrackingSettings:
    """MLflow: tracking URI (empty: SQLite under the project dir) and experiment name."""

    uri: str = ""
    experiment: str = ""
    log_checkpoint: bool = False
    measure_latency: bool = False


@dataclass(frozen=True)
class StudyConfig:
    """A whole study file."""

    study: StudySection = field(default_factory=StudySection)
    data: StudyData = field(default_factory=StudyData)
    hierarchies: HierarchyCandidates = field(default_factory=HierarchyCandidates)
    space: SearchSpace = field(default_factory=SearchSpace)
    objectives: tuple[Objective, ...] = (Objective(),)
    budget: Budget = field(default_factory=Budget)
    sampler: SamplerSettings = field(default_factory=SamplerSettings)
    pruner: PrunerSettings = field(default_factory=PrunerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    tracking: TrackingSettings = field(default_factory=TrackingSettings)
    train: TrainConfig = field(default_factory=TrainConfig)
    models: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ValueError("objectives: name at least one, e.g. [[objectives]] metric = 'rank1'")
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives repeat a metric: {names}")
        if not (self.hierarchies.presets or self.hierarchies.files or self.hierarchies.discover.descriptors):
            raise ValueError("hierarchies: name at least one preset, tree file or discovery setting")
        unknown = sorted(set(self.models) - set(self.space.models))
        if unknown:
            raise ValueError(f"[models.{unknown[0]}] overrides a model that space.models does not list "
                             f"({list(self.space.models)})")
        for name in self.models:
            self.train_for(name)  # validate every family's overrides up front
        d = self.hierarchies.discover
        if bool(d.descriptors) != bool(d.linkages):
            raise ValueError("hierarchies.discover needs both descriptors and linkages (every pair is discovered)")

    def train_for(self, model: str) -> TrainConfig:
        """The base training config with the ``[models.<model>]`` overrides applied."""
        overrides = self.models.get(model)
        if not overrides:
            return self.train
        merged = _deep_merge(to_dict(self.train), overrides)
        try:
            return from_dict(TrainConfig, merged, where=f"models.{model}")
        except ConfigError as exc:
            raise ValueError(str(exc)) from exc

    def model_channels(self) -> dict[str, tuple[int, ...]]:
        """Widths a model's ``[models.<name>.model] channels`` fixes for it, by model name.

        Families take different numbers of widths (HSTL one per stage and the stem, GaitBase four), so
        a study mixing them gives each its own; ``space.channels`` applies to the models without.
        """
        fixed: dict[str, tuple[int, ...]] = {}
        for name, overrides in self.models.items():
            model = overrides.get("model") if isinstance(overrides, dict) else None
            if isinstance(model, dict) and model.get("channels") is not None:
                channels = self.train_for(name).model.channels
                if channels is not None:
                    fixed[name] = tuple(channels)
        return fixed

    @property
    def directions(self) -> list[Literal["maximize", "minimize"]]:
        return [o.direction for o in self.objectives]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.study.name

    @property
    def project_dir(self) -> Path:
        """Where data, trees, trial outputs and the default stores live (absolute)."""
        return Path(self.study.project_dir).expanduser().resolve()


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def load_study_config(path: str | Path, project_dir: str | Path | None = None) -> StudyConfig:
    """Read a study TOML; unknown keys and bad values raise ``ConfigError`` naming the file.

    The study name defaults to the file's stem; ``project_dir`` overrides the file's ``study.project_dir``.
    """
    path = Path(path)
    data = read_mapping(path)
    study = dict(data.get("study", {}))
    study.setdefault("name", path.stem)
    if project_dir is not None:
        study["project_dir"] = str(project_dir)
    data["study"] = study
    try:
        return from_dict(StudyConfig, data)
    except (ConfigError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
