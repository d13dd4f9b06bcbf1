"""A small model registry in the timm/torchvision spirit: ``list_models()`` and ``create_model(name)``."""

from __future__ import annotations

from typing import Any, TypeVar

from zoo.errors import ZooError

ModelClass = TypeVar("ModelClass", bound=type)
_MODELS: dict[str, type] = {}


def register_model(cls: ModelClass) -> ModelClass:
    """Class decorator: make an architecture available by its class name (names are unique)."""
    if cls.__name__ in _MODELS:
        raise ValueError(f"a model named {cls.__name__!r} is already registered ({_MODELS[cls.__name__].__module__})")
    _MODELS[cls.__name__] = cls
    return cls


def list_models() -> list[str]:
    """The registered architectures (classes whose ``kind`` is ``architecture``).

    A population of one of them is registered too, so that its checkpoints load, but is not listed.
    """
    return sorted(name for name, cls in _MODELS.items() if cls.kind == "architecture")


def get_model_class(name: str) -> type:
    """The registered architecture called ``name``, or one error listing those there are."""
    if name not in _MODELS:
        raise ZooError(f"unknown model {name!r}; accepted: {', '.join(list_models())}")
    return _MODELS[name]


def create_model(name: str, **kwargs: Any):
    """Instantiate a registered architecture, e.g. ``create_model("FCNet", hidden=[64])``."""
    return get_model_class(name)(**kwargs)
