"""Where a measured model comes from: a registry name, a model family's spec, or any importable factory.

A :class:`ModelRecipe` is plain JSON, so a fresh process (the CPU memory probe) can rebuild exactly
the model the caller meant without unpickling anything.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from collections.abc import Mapping
from typing import Any

from torch import nn

_REGISTRY_FACTORY = "workbench.models:create_model"


@dataclasses.dataclass(frozen=True)
class ModelRecipe:
    """A JSON-serialisable description of how to build a model.

    ``factory`` is ``"package.module:callable"``; it is called with ``kwargs``. When ``spec_class``
    is set, ``kwargs["spec"]`` holds that dataclass as a dict and is rebuilt into it before the call.
    """

    factory: str
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    spec_class: str | None = None
    label: str = ""

    def __post_init__(self) -> None:
        _split_ref(self.factory, "factory")
        if self.spec_class is not None:
            _split_ref(self.spec_class, "spec_class")
            if not isinstance(self.kwargs.get("spec"), Mapping):
                raise ValueError("ModelRecipe: spec_class is set but kwargs['spec'] is not a mapping of spec fields")
        try:
            json.dumps(dict(self.kwargs))
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"ModelRecipe({self.factory}): kwargs must be plain JSON values (numbers, strings, lists, "
                f"dicts): {exc}"
            ) from exc
        if not self.label:
            object.__setattr__(self, "label", self.factory.rpartition(":")[2])

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> ModelRecipe:
        """A model from the ``workbench.models`` registry, with ``create_model`` overrides."""
        return cls(_REGISTRY_FACTORY, {"name": name, **overrides}, label=name)

    @classmethod
    def from_spec(cls, spec: Any, label: str = "") -> ModelRecipe:
        """A model built from the spec of a registered model family (also one cut from a tree)."""
        if not dataclasses.is_dataclass(spec) or isinstance(spec, type):
            raise TypeError(f"from_spec expects a spec dataclass instance, got {type(spec).__name__}")
        from workbench.config import to_dict

        spec_type = type(spec)
        return cls(
            _spec_builder_ref(spec),
            {"spec": to_dict(spec)},
            spec_class=f"{spec_type.__module__}:{spec_type.__qualname__}",
            label=label or _spec_label(spec),
        )

    def build(self) -> nn.Module:
        """Build the model (on the current default device: wrap in ``torch.device("meta")`` for a shell)."""
        factory = _import_ref(self.factory, "factory")
        kwargs = dict(self.kwargs)
        if self.spec_class is not None:
            from workbench.config import from_dict

            kwargs["spec"] = from_dict(_import_ref(self.spec_class, "spec_class"), kwargs["spec"])
        model = factory(**kwargs)
        if not isinstance(model, nn.Module):
            raise TypeError(f"{self.factory} returned {type(model).__name__}, not a torch.nn.Module")
        return model

    def to_json(self) -> str:
        """The recipe as a JSON string."""
        return json.dumps(dataclasses.asdict(self) | {"kwargs": dict(self.kwargs)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelRecipe:
        """Rebuild a recipe written by :meth:`to_json`."""
        data = json.loads(text)
        if not isinstance(data, dict) or "factory" not in data:
            raise ValueError("ModelRecipe JSON: expected an object with a 'factory' key")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"ModelRecipe JSON: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)


def _split_ref(ref: str, what: str) -> tuple[str, str]:
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise ValueError(f"ModelRecipe.{what}={ref!r}: expected 'package.module:name', e.g. 'torch.nn:Conv3d'")
    return module, attr


def _import_ref(ref: str, what: str) -> Any:
    module_name, attr = _split_ref(ref, what)
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"ModelRecipe.{what}={ref!r}: cannot import {module_name}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ValueError(f"ModelRecipe.{what}={ref!r}: {module_name} has no attribute {attr!r}")
        target = getattr(target, part)
    return target


def _spec_builder_ref(spec: Any) -> str:
    """The ``module:callable`` that turns a spec into a model: ``workbench.models.build_model``."""
    from workbench.models import family_of

    try:
        family_of(spec)
    except TypeError as exc:
        raise TypeError(f"{exc}; wrap its model in ModelRecipe(factory=...) instead") from exc
    return "workbench.models:build_model"


def _spec_label(spec: Any) -> str:
    """``name`` when the spec has one, else e.g. ``HSTLSpec[64/40-24/8-32-16-8]`` from its split lists."""
    name = getattr(spec, "name", None)
    if isinstance(name, str) and name:
        return name
    split_lists = getattr(spec, "split_lists", None)
    if callable(split_lists):
        splits = "/".join("-".join(str(h) for h in split) for split in split_lists().values())
        return f"{type(spec).__name__}[{splits}]"
    return type(spec).__name__


def as_recipe(source: Any) -> ModelRecipe | None:
    """A recipe for a name, spec or recipe; ``None`` for a live ``nn.Module`` (it has no recipe)."""
    if isinstance(source, ModelRecipe):
        return source
    if isinstance(source, str):
        return ModelRecipe.from_name(source)
    if isinstance(source, nn.Module):
        return None
    if dataclasses.is_dataclass(source) and not isinstance(source, type):
        return ModelRecipe.from_spec(source)
    raise TypeError(
        f"cannot measure a {type(source).__name__}: pass a registered model name, a spec dataclass, "
        "a ModelRecipe or a torch.nn.Module"
    )


def source_label(source: Any) -> str:
    """A short human name for whatever is being measured."""
    recipe = as_recipe(source)
    return recipe.label if recipe is not None else type(source).__name__
