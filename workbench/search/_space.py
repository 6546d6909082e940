"""The search space: what a trial picks (tree, cut per stage, channels, lr, frames, FTA) and its config."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import optuna

from workbench.hierarchy import PartitionTree, load_tree
from workbench.search._config import SearchSpace, StudyConfig
from workbench.training import TrainConfig


@dataclass(frozen=True)
class Candidate:
    """A tree the study may pick: its name in the search space, where it loads from, and the tree."""

    name: str
    source: str
    tree: PartitionTree


@dataclass(frozen=True)
class TrialChoice:
    """Everything one trial chose, in plain values."""

    tree: str
    cuts: tuple[int, ...]
    channels: tuple[int, ...]
    lr: float
    frames: int
    fta: bool
    model: str = ""


def channels_key(channels: Sequence[int]) -> str:
    """Categorical label of a channel list (Optuna choices must be plain scalars): ``8-16-32``."""
    return "-".join(str(int(c)) for c in channels)


def check_candidates(candidates: Sequence[Candidate], space: SearchSpace) -> list[str]:
    """Problems that make the space infeasible: cuts that do not grow, or a tree that cannot reach a cut."""
    problems: list[str] = []
    for i in range(len(space.stage_cuts) - 1):
        if max(space.stage_cuts[i]) >= min(space.stage_cuts[i + 1]):
            problems.append(
                f"space.stage_cuts[{i}] {list(space.stage_cuts[i])} must all be below stage_cuts[{i + 1}] "
                f"{list(space.stage_cuts[i + 1])} so that every trial's cuts refine one another"
            )
    wanted = sorted({k for ks in space.stage_cuts for k in ks})
    for cand in candidates:
        missing = [k for k in wanted if k not in cand.tree.reachable_ks() or k > cand.tree.n_rows]
        if missing:
            problems.append(
                f"tree {cand.name!r} ({cand.source}) has no cut with {missing} regions; reachable: "
                f"{[k for k in cand.tree.reachable_ks() if k <= max(wanted)]}"
            )
    return problems


#: User attribute of a trial: the choices its study fixed (one value in the space). They are not
#: search parameters, so Optuna's importance, slice and contour plots show only what was searched.
FIXED_CHOICES_KEY = "fixed_choices"


def suggest(trial: optuna.trial.BaseTrial, space: SearchSpace, candidates: Sequence[Candidate],
            model_channels: Mapping[str, tuple[int, ...]] | None = None) -> TrialChoice:
    """Draw one trial's choices; an entry with one value is fixed, recorded in ``FIXED_CHOICES_KEY``.

    ``model_channels`` holds the widths a model's ``[models.<name>.model] channels`` fixes for it
    (``StudyConfig.model_channels``): such a model takes them instead of ``space.channels``, which is
    then not searched for its trials.
    """
    fixed: dict[str, object] = {}

    def pick(name: str, values: Sequence[object]) -> object:
        options = list(values)
        if len(options) == 1:
            fixed[name] = options[0]
            return options[0]
        return trial.suggest_categorical(name, options)  # type: ignore[arg-type]

    model = str(pick("model", list(space.models))) if space.models else ""
    tree = str(pick("tree", [c.name for c in candidates]))
    cuts = tuple(int(pick(f"cut_stage{i + 2}", list(ks))) for i, ks in enumerate(space.stage_cuts))  # type: ignore[call-overload]
    own = (model_channels or {}).get(model)
    if own is not None:
        fixed["channels"] = channels_key(own)
        channels = tuple(int(x) for x in own)
    else:
        ch_by_key = {channels_key(c): tuple(int(x) for x in c) for c in space.channels}
        channels = ch_by_key[str(pick("channels", list(ch_by_key)))]
    low, high = space.lr
    if low == high:
        fixed["lr"] = low
        lr = low
    else:
        lr = trial.suggest_float("lr", low, high, log=True)
    frames = int(pick("frames", list(space.frames)))  # type: ignore[call-overload]
    fta = bool(pick("fta", list(space.fta)))
    trial.set_user_attr(FIXED_CHOICES_KEY, fixed)
    return TrialChoice(tree=tree, cuts=cuts, channels=channels, lr=lr, frames=frames, fta=fta, model=model)


#: User attribute of a trial: its regions per stage, every stage, as its model's family counts them
#: (``ModelFamily.levels``: ``[1, 2, 4]`` for a family with a whole-body stage), as MLflow's ``cuts``
#: param and ``workbench compare`` show them.
CUTS_KEY = "cuts"


def trial_cuts(trial: optuna.trial.FrozenTrial | optuna.trial.BaseTrial) -> list[int]:
    """A trial's regions per stage, every stage; trials recorded before ``CUTS_KEY`` read as HSTL."""
    recorded = trial.user_attrs.get(CUTS_KEY)
    if recorded:
        return [int(k) for k in recorded]
    choices = trial_choices(trial)
    stages = sorted((int(k[len("cut_stage"):]), int(v)) for k, v in choices.items()  # type: ignore[call-overload]
                    if k.startswith("cut_stage"))
    return [1, *(v for _, v in stages)]


def stage_levels(train_config: TrainConfig) -> list[int]:
    """Regions per stage of the model a trial trains, every stage, as the model's family counts them.

    It reads the model the trial's training config names (a study may name it in ``space.models`` or
    only in ``[train.model]``), so the logged cuts always describe the network that was trained.
    """
    from workbench.models import model_family

    model = train_config.model
    return model_family(model.name).levels(model.cuts or ())


def trial_choices(trial: optuna.trial.FrozenTrial | optuna.trial.BaseTrial) -> dict[str, object]:
    """Every choice of a trial by name: the searched parameters and the ones its study fixed."""
    fixed = trial.user_attrs.get(FIXED_CHOICES_KEY) or {}
    return {**fixed, **trial.params}


def trial_train_config(config: StudyConfig, choice: TrialChoice, candidates: Mapping[str, Candidate],
                       output_dir: Path, data_path: str, partition: str) -> TrainConfig:
    """The study's base training config with this trial's choices applied.

    ``partition`` is the study's validation split: trials learn on its ``TRAIN_SET`` only.
    """
    base = config.train_for(choice.model) if choice.model else config.train
    cand = candidates[choice.tree]
    # The model's family decides what it takes from the tree and the cuts (ModelFamily.cut).
    model = dataclasses.replace(base.model, name=choice.model or base.model.name, tree=cand.source,
                                cuts=choice.cuts, channels=choice.channels, fta=choice.fta)
    data = dataclasses.replace(base.data, path=data_path, frames=choice.frames, partition=partition, subset="train")
    optimizer = dataclasses.replace(base.optimizer, lr=choice.lr)
    return dataclasses.replace(
        base,
        model=model,
        data=data,
        optimizer=optimizer,
        iterations=config.budget.iterations,
        eval_every=config.budget.eval_every,
        output_dir=str(output_dir),
    )


def load_candidates(config: StudyConfig, discovered: Sequence[Path] = ()) -> list[Candidate]:
    """Presets, tree files and discovered trees named in the study, loaded once and checked."""
    candidates: list[Candidate] = []
    for name in config.hierarchies.presets:
        candidates.append(Candidate(name=name, source=name, tree=load_tree(name)))
    for path in [*config.hierarchies.files, *map(str, discovered)]:
        tree = load_tree(path)
        label = tree.name or Path(path).stem
        candidates.append(Candidate(name=label, source=str(Path(path).resolve()), tree=tree))
    names = [c.name for c in candidates]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"hierarchy candidates share names {duplicated}; rename the tree files")
    return candidates
