"""Model registry: factories registered by name, built with keyword overrides."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

ModelFactory = Callable[..., nn.Module]
F = TypeVar("F", bound=ModelFactory)

_REGISTRY: dict[str, ModelFactory] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Decorator registering ``factory(**overrides) -> nn.Module`` under ``name``; duplicates raise."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"register_model: name must be a non-empty string, got {name!r}")

    def decorate(factory: F) -> F:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered (by {_REGISTRY[name].__qualname__}); pick another name")
        _REGISTRY[name] = factory
        return factory

    return decorate


def list_models() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model_factory(name: str) -> ModelFactory:
    """The factory registered under ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    return _REGISTRY[name]


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build the registered model ``name``; ``overrides`` go to its factory (e.g. ``num_classes=10``)."""
    return get_model_factory(name)(**overrides)
