"""Everything a study file names, checked before any data is rendered or any trial starts.

A misspelt protocol or objective used to fail every trial, one after another, without end; here each
mistake is one error naming the field, the bad value and the valid choices.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from workbench.search._config import COST_METRICS, StudyConfig

#: Figures a study may optimise besides the evaluation's: the cost report's and the training time.
_OTHER_METRICS = (*COST_METRICS, "params", "train_seconds")


def _unknown(field: str, values: Sequence[str], known: Sequence[str]) -> list[str]:
    return [f"{field}: {v!r} is not one of {', '.join(sorted(known))}" for v in values if v not in known]


def check_names(config: StudyConfig) -> list[str]:
    """Problems with the names a study file uses (protocol, models, descriptors, linkages, metric)."""
    from workbench.evaluation import list_protocols
    from workbench.hierarchy import LINKAGES, METRICS, list_descriptors
    from workbench.models import list_models

    problems = _unknown("data.protocol", [config.data.protocol], list_protocols())
    models = list(config.space.models) or [config.train.model.name]
    field = "space.models" if config.space.models else "train.model.name"
    problems += _unknown(field, models, list_models())
    discover = config.hierarchies.discover
    problems += _unknown("hierarchies.discover.descriptors", list(discover.descriptors), list_descriptors())
    # A study discovers from its training subjects' silhouettes; a model's feature maps need that model.
    for name in sorted(set(discover.descriptors) & set(list_descriptors("activation"))):
        problems.append(f"hierarchies.discover.descriptors: {name!r} reads a trained model's feature maps, which a "
                        "study does not have before it trains; discover the tree first (`workbench discover --data "
                        "DATA --checkpoint CKPT --out hierarchies/NAME.json`, from a model trained on this study's "
                        "training subjects only) and list it under hierarchies.files")
    problems += _unknown("hierarchies.discover.linkages", list(discover.linkages), LINKAGES)
    problems += _unknown("hierarchies.discover.metric", [discover.metric], METRICS)
    if "ward" in discover.linkages and discover.metric != "euclidean":
        problems.append(f"hierarchies.discover: linkage 'ward' needs metric 'euclidean', got {discover.metric!r}")
    for name in config.hierarchies.presets:
        problems += _tree_problem("hierarchies.presets", name)
    for path in config.hierarchies.files:
        problems += _tree_problem("hierarchies.files", path)
    return problems


def check_widths(config: StudyConfig) -> list[str]:
    """Widths a model cannot take: ``space.channels`` (or its own) against what its family builds.

    Families take different numbers of widths (HSTL-small three for two cut stages, GaitBase four), so
    a study mixing them would fail one family's every trial; each model's spec is built once here, with
    the study's smallest cuts, and only its width errors are reported (trees are checked elsewhere).
    """
    from workbench.models import TreeCut, model_family

    own = config.model_channels()
    models = list(config.space.models) or [config.train.model.name]
    cuts = tuple(min(ks) for ks in config.space.stage_cuts)
    problems: list[str] = []
    for name in models:
        field = f"models.{name}.model.channels" if name in own else "space.channels"
        widths = [own[name]] if name in own else [tuple(c) for c in config.space.channels]
        family = model_family(name)
        options = config.train_for(name).model.options
        for channels in widths:
            try:
                family.cut(name, TreeCut(tree=None, cuts=cuts, channels=channels, fta=None), 2, options)
            except ValueError as exc:
                if "channels" not in str(exc):
                    continue
                fix = (f"give {name} its own widths: [models.{name}.model] channels = [...]"
                       if field == "space.channels" else "fix the widths")
                problems.append(f"{field}: {list(channels)} do not fit model {name!r} ({exc}); {fix}")
    return problems


def _tree_problem(field: str, name: str) -> list[str]:
    from workbench.hierarchy import load_tree

    try:
        load_tree(name)
    except (ValueError, FileNotFoundError, KeyError, OSError) as exc:
        return [f"{field}: {name!r}: {exc}"]
    return []


def check_objectives(config: StudyConfig, protocol: Any, records: Sequence[Any], probe: Sequence[str]) -> list[str]:
    """Objective metrics against the keys the validation protocol and the cost report produce.

    The protocol runs once on stand-in embeddings of the validation sequences (no model, no frames
    read), so the keys are exactly those a trial will report.
    """
    import numpy as np

    from workbench.evaluation import EmbeddingSet

    if not records:
        return ["data: the validation subjects have no sequences on disk"]
    rng = np.random.default_rng(0)
    flags = [r.key in set(probe) for r in records] if protocol.needs_probe_flags else None
    data = EmbeddingSet(rng.normal(size=(len(records), 2, 1)).astype(np.float32), [r.id for r in records],
                        [r.type for r in records], [r.view for r in records], flags)
    try:
        summary = protocol.evaluate(data, resamples=0).summary()
    except ValueError as exc:
        return [f"data.protocol {config.data.protocol!r} cannot score the validation subjects: {exc}"]
    produced = set(summary) | set(_OTHER_METRICS)
    problems = []
    for objective in config.objectives:
        metric = objective.metric
        if metric not in produced and f"{metric}_mean" not in produced:
            problems.append(f"objectives: metric {metric!r} is not produced; {protocol.name} gives "
                            f"{', '.join(sorted(summary))}, the cost report {', '.join(_OTHER_METRICS)}")
    return problems


def raise_problems(problems: Sequence[str], where: str) -> None:
    """One ``ValueError`` listing every problem, or nothing."""
    if problems:
        raise ValueError(f"{where}: the study cannot run as written:\n  " + "\n  ".join(problems))
