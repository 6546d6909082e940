"""Registries: model families by name, and model factories by name (each one a preset of a family)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from workbench._plugins import load_entry_points
from workbench.models._family import ModelFamily, TreeCut

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

_REGISTRY: dict[str, ModelFactory] = {}
_FAMILY_OF_MODEL: dict[str, str] = {}
_FAMILIES: dict[str, ModelFamily] = {}
#: Entry-point group of other distributions' model families and models (``workbench._plugins``).
PLUGIN_GROUP = "workbench.models"


def register_family(family: ModelFamily) -> ModelFamily:
    """Register a model family under ``family.name``; duplicate names or spec types raise."""
    if not family.name:
        raise ValueError("register_family: the family needs a non-empty name")
    if family.name in _FAMILIES:
        raise ValueError(f"model family {family.name!r} is already registered; pick another name")
    taken = [f.name for f in _FAMILIES.values() if f.spec_type is family.spec_type]
    if taken:
        raise ValueError(f"{family.spec_type.__name__} already belongs to family {taken[0]!r}; give {family.name!r} its own spec type")
    _FAMILIES[family.name] = family
    return family


def list_families() -> list[str]:
    """Registered family names, sorted."""
    load_entry_points(PLUGIN_GROUP)
    return sorted(_FAMILIES)


def get_family(name: str) -> ModelFamily:
    """The family registered as ``name``; unknown names raise ``ValueError`` listing the known ones."""
    load_entry_points(PLUGIN_GROUP)
    if name not in _FAMILIES:
        raise ValueError(f"unknown model family {name!r}; registered families: {', '.join(list_families())}")
    return _FAMILIES[name]


def register_model(name: str, family: str | None = None) -> Callable[[F], F]:
    """Decorator registering ``factory(**overrides) -> nn.Module`` under ``name``; duplicates raise.

    ``family`` names the registered family the model is a preset of (it can then be cut from a tree,
    exported, and searched like the others); a model without one is built by name only.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_model: name must be a non-empty string, got {name!r}")
    if family is not None and family not in _FAMILIES:
        # Not get_family: registering must not load other distributions' extensions mid-import.
        raise ValueError(
            f"register_model({name!r}): family {family!r} is not registered (known: {', '.join(sorted(_FAMILIES))}); "
            "register_family it first"
        )

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].__qualname__}); pick another name")
        _REGISTRY[name] = factory
        if family is not None:
            _FAMILY_OF_MODEL[name] = family
        return factory

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    load_entry_points(PLUGIN_GROUP)
    return sorted(_REGISTRY)


def get_model_factory(name: str) -> ModelFactory:
    """The factory registered under ``name``; unknown names raise ``ValueError`` listing the known ones."""
    load_entry_points(PLUGIN_GROUP)
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` go to its factory (e.g. ``num_classes=10``)."""
    return get_model_factory(name)(**overrides)


def model_family(name: str) -> ModelFamily:
    """The family of the registered model ``name``; a model registered without one raises ``ValueError``."""
    get_model_factory(name)
    if name not in _FAMILY_OF_MODEL:
        raise ValueError(
            f"model {name!r} was registered without a family, so it can only be built by name; register it with "
            "register_model(name, family=...) to cut it from a tree, search it or export it"
        )
    return _FAMILIES[_FAMILY_OF_MODEL[name]]


def family_of(spec: Any) -> ModelFamily:
    """The family whose spec type ``spec`` is; other objects raise ``TypeError`` naming the known spec types."""
    load_entry_points(PLUGIN_GROUP)
    for family in _FAMILIES.values():
        if type(spec) is family.spec_type:
            return family
    known = ", ".join(f.spec_type.__name__ for f in _FAMILIES.values())
    raise TypeError(f"{type(spec).__name__} is not the spec of a registered model family (known: {known})")


def build_model(spec: Any) -> nn.Module:
    """The network a spec of any registered family describes (the builder ``workbench.cost`` uses)."""
    return family_of(spec).build(spec)


def cut_model(name: str, tree_cut: TreeCut, num_classes: int | None = None, **options: Any) -> nn.Module:
    """The registered model ``name`` with its parts cut from a tree (``options``: further spec options)."""
    family = model_family(name)
    return family.build(family.cut(name, tree_cut, num_classes, options))
