"""A small model registry in the timm spirit: ``list_models()`` and ``create_model(name)``."""

from __future__ import annotations

from typing import Any, TypeVar

from zoo.errors import ZooError

ModelClass = TypeVar("ModelClass", bound=type)
_MODELS: dict[str, type] = {}


def register_model(cls: ModelClass) -> ModelClass:
    """Class decorator: make an architecture available by its class name."""
    _MODELS[cls.__name__] = cls
    return cls


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any):
    """Instantiate a registered architecture, e.g. ``create_model("FCNet", hidden=[64])``."""
    if name not in _MODELS:
        raise ZooError(f"unknown model {name!r}; accepted: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)
