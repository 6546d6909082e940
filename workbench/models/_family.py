"""The model-family contract: what training, search, cost and the CLI may ask of any kind of network.

A *family* (HSTL, GaitGS, GaitBase, a user's own) is one module that defines a frozen spec
dataclass, a network built from it, and a :class:`ModelFamily` registered with
``workbench.models.register_family``; its registered model names (``register_model(name,
family=...)``) are its presets. Code outside the family only ever talks to these three types.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, Self, runtime_checkable

import torch
from torch import nn

from workbench.models._output import ModelOutput


class SpecError(ValueError):
    """A spec that cannot build a network; the message names the field and the fix."""


@runtime_checkable
class ModelSpec(Protocol):
    """What every family's spec offers: derived sizes, split lists for logging, plain-dict round trip."""

    num_classes: int

    @property
    def input_height(self) -> int:
        """Silhouette height the network is built for."""
        ...

    @property
    def parts(self) -> int:
        """Feature parts ``p`` of the output."""
        ...

    def split_lists(self) -> dict[str, list[int]]:
        """Region heights per block, e.g. ``{"stage2": [40, 24], ...}``, for logging and comparison."""
        ...

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, numbers, bools) for config files and MLflow params."""
        ...


class SpecFields:
    """Serialisation shared by every frozen spec dataclass: plain dicts in and out, validated copies."""

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, numbers, bools) for config files and MLflow params."""
        from workbench.config import to_dict

        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Rebuild a spec from :meth:`to_dict`; unknown keys raise ``ConfigError``."""
        from workbench.config import from_dict

        return from_dict(cls, data)

    def merge(self, overrides: Mapping[str, Any]) -> Self:
        """A copy with fields from plain config values (lists, dicts); unknown keys raise ``ConfigError``."""
        if not overrides:
            return self
        return self.from_dict({**self.to_dict(), **overrides})

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` (validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def check_split(split: Sequence[int], height: int, where: str) -> None:
    """Raise ``SpecError`` unless ``split`` is non-empty region heights, each >= 1, summing to ``height``."""
    if not split:
        raise SpecError(f"{where} is empty: give at least one region height, e.g. [{height}]")
    if min(split) < 1:
        raise SpecError(f"{where} {list(split)} has an empty region: every region needs at least one row")
    if sum(split) != height:
        raise SpecError(
            f"{where} {list(split)} sums to {sum(split)} rows but the feature height there is {height}; "
            "the regions must cover every row exactly once"
        )


def equal_split(total: int, count: int) -> tuple[int, ...]:
    """``count`` contiguous regions of ``total`` rows, as equal as possible (larger ones first)."""
    if not 1 <= count <= total:
        raise SpecError(f"cannot split {total} rows into {count} regions: give 1..{total} regions")
    base, extra = divmod(total, count)
    return tuple(base + 1 if i < extra else base for i in range(count))


class GaitModel(nn.Module, abc.ABC):
    """The model contract: a spec, part features, a head, and ``ModelOutput`` from ``forward``.

    ``forward_features(x: [n, s, h, w], seqL: int64 [n] | None) -> [n, c, p]`` pools the silhouettes
    into part features; ``forward_head(features) -> (embeddings [n, c, p], logits [n, classes, p])``
    maps them to what the losses read. Each sequence's output (and gradient) must equal that of running
    it alone, whatever padding the batch holds. Training, evaluation, cost and the registered-model tests
    rely on nothing else.
    """

    spec: Any

    @property
    def parts(self) -> int:
        """Number of feature parts ``p``."""
        return int(self.spec.parts)

    @abc.abstractmethod
    def forward_features(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> torch.Tensor:
        """Part features before the head: ``x: [n, s, h, w]`` -> ``[n, c, p]``."""

    @abc.abstractmethod
    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``features: [n, c, p]`` -> ``(embeddings [n, c, p], logits [n, classes, p])``."""

    def forward(self, x: torch.Tensor, seqL: torch.Tensor | None = None) -> ModelOutput:
        """``x: [n, s, h, w]`` in [0, 1], ``seqL: int64 [n]`` or ``None`` -> ``ModelOutput``."""
        embeddings, logits = self.forward_head(self.forward_features(x, seqL))
        return ModelOutput(embeddings, logits, embeddings)


@dataclasses.dataclass(frozen=True)
class TreeCut:
    """What a study or a training config takes from a partition tree for one model.

    ``tree``: a ``PartitionTree`` or a name/path for ``load_tree`` (``None``: the family's default);
    ``cuts``: regions per level, coarse to fine, growing (``None``: the family's default); ``channels``:
    widths in the family's own order (``None``: the preset's); ``fta``: HSTL's temporal aggregation
    after the first stage (``None``: the family's default; families without it ignore it).
    """

    tree: Any = None
    cuts: tuple[int, ...] | None = None
    channels: tuple[int, ...] | None = None
    fta: bool | None = None


@dataclasses.dataclass(frozen=True)
class Rebuild:
    """One way a training config may rebuild a network: a registered model, cut from a tree or not.

    ``tree_cut=None`` means the registered ``model`` with ``options`` as spec overrides; otherwise
    ``options`` are the family's further tree options.
    """

    model: str
    tree_cut: TreeCut | None = None
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ImportedWeights:
    """A network read from a public checkpoint of another code base, its weights loaded.

    ``tree``: the ``PartitionTree`` whose cuts gave its splits; ``rebuilds``: configs that may rebuild
    it, most specific first (training keeps the first that builds the same spec).
    """

    model: nn.Module
    tree: Any
    rebuilds: tuple[Rebuild, ...]


#: ``import_weights(loaded_checkpoint, tree_or_none, where) -> ImportedWeights | None`` (``None``: not this
#: family's weights); a checkpoint of the family that does not fit raises ``SpecError``, ``FileNotFoundError``
#: or ``RuntimeError``.
Importer = Callable[[Mapping[str, Any], Any, str], ImportedWeights | None]
#: ``cut(model_name, tree_cut, num_classes, options) -> spec`` (``num_classes=None``: the preset's)
CutFromTree = Callable[[str, TreeCut, int | None, Mapping[str, Any]], Any]
#: ``export(model, checkpoint_path, model_cfg_path, **options)``
Exporter = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class ModelFamily:
    """Everything the workbench asks of one family of networks, registered once by its module.

    ``spec_type``: its frozen spec dataclass (``ModelSpec``); ``build(spec) -> GaitModel``;
    ``cut(model_name, tree_cut, num_classes, options) -> spec``: the spec a registered model of the
    family becomes when its parts are cut from a tree (raise ``ValueError`` naming the fix for a
    model that cannot be); ``levels(cuts) -> regions per stage``: every stage's region count a cut
    gives (HSTL adds its whole-body stage), as logged and compared; ``narrow(spec) -> overrides``:
    the smallest widths that keep the spec's structure (the registered-model tests and quick CPU
    checks build it); ``export``: write an OpenGait checkpoint and model_cfg, where the family has
    one (``export(model, checkpoint_path, model_cfg_path, **options)``); ``import_weights``: read a
    public checkpoint of the family (``Importer``), with ``import_hint`` saying what such a checkpoint
    holds; ``tree_models``: the registered models ``cut`` accepts (``None``: all of the family's), so
    configs are checked before any tree is read; ``default_cuts``: the cuts ``cut`` takes when a
    ``TreeCut`` gives none (empty: the family has none); ``paper_channels``: the published model's widths
    in the family's order, which ``workbench cost`` and ``export`` cut a tree with so their figures are
    the paper's (``None``: the preset's; training and studies always keep the preset's).
    """

    name: str
    spec_type: type
    build: Callable[[Any], nn.Module]
    cut: CutFromTree
    levels: Callable[[Sequence[int]], list[int]]
    narrow: Callable[[Any], dict[str, Any]]
    description: str = ""
    export: Exporter | None = None
    import_weights: Importer | None = None
    import_hint: str = ""
    tree_models: tuple[str, ...] | None = None
    default_cuts: tuple[int, ...] = ()
    paper_channels: tuple[int, ...] | None = None

    def check_tree_model(self, name: str) -> None:
        """Raise ``ValueError`` naming the fix when ``name`` is not a model this family cuts from a tree."""
        if self.tree_models is not None and name not in self.tree_models:
            allowed = ", ".join(repr(m) for m in self.tree_models)
            raise ValueError(
                f"model.tree/cuts/channels/fta cut a model from a partition tree, but the {self.name} family cuts "
                f"only {allowed}, and model.name is {name!r}; drop them or set model.name to {allowed}"
            )
