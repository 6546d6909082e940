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


def is_gaitgs(model_name: str) -> bool:
    """True for the GaitGS family, whose parts come from a tree through model options."""
    return model_name.startswith("gaitgs")


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


def suggest(trial: optuna.trial.BaseTrial, space: SearchSpace, candidates: Sequence[Candidate]) -> TrialChoice:
    """Draw one trial's choices; single-valued entries are fixed and still recorded as params."""
    model = trial.suggest_categorical("model", list(space.models)) if space.models else ""
    tree = trial.suggest_categorical("tree", [c.name for c in candidates])
    cuts = tuple(
        int(trial.suggest_categorical(f"cut_stage{i + 2}", list(ks))) for i, ks in enumerate(space.stage_cuts)
    )
    ch_by_key = {channels_key(c): tuple(int(x) for x in c) for c in space.channels}
    channels = ch_by_key[trial.suggest_categorical("channels", list(ch_by_key))]
    low, high = space.lr
    lr = low if low == high else trial.suggest_float("lr", low, high, log=True)
    if low == high:
        trial.set_user_attr("lr", low)
    frames = int(trial.suggest_categorical("frames", list(space.frames)))
    fta = bool(trial.suggest_categorical("fta", list(space.fta)))
    return TrialChoice(tree=tree, cuts=cuts, channels=channels, lr=lr, frames=frames, fta=fta, model=model)


def trial_train_config(config: StudyConfig, choice: TrialChoice, candidates: Mapping[str, Candidate],
                       output_dir: Path, data_path: str, partition: str) -> TrainConfig:
    """The study's base training config with this trial's choices applied.

    ``partition`` is the study's validation split: trials learn on its ``TRAIN_SET`` only.
    """
    base = config.train_for(choice.model) if choice.model else config.train
    cand = candidates[choice.tree]
    name = choice.model or base.model.name
    if is_gaitgs(name):
        # GaitGS takes its strips from the first level and its parts from the last; FTA is HSTL's.
        options = {**base.model.options, "tree": cand.source, "strips": choice.cuts[0],
                   "parts": choice.cuts[-1], "channels": list(choice.channels)}
        model = dataclasses.replace(base.model, name=name, tree=None, cuts=None, channels=None, fta=None,
                                    options=options)
    else:
        model = dataclasses.replace(
            base.model, name=name, tree=cand.source, cuts=choice.cuts, channels=choice.channels, fta=choice.fta
        )
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
