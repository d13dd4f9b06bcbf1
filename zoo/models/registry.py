"""A small model registry in the timm/torchvision spirit: ``list_models()`` and ``create_model(name)``."""

from __future__ import annotations

from typing import Any, TypeVar

from zoo.errors import ZooError

ModelClass = TypeVar("ModelClass", bound=type)
_MODELS: dict[str, type] = {}


def register_model(cls: ModelClass) -> ModelClass:
    """Class decorator: make an architecture available by its class name (names are unique).

    The same class defined again in the same module (a notebook cell run twice) replaces the first;
    another module's class of a registered name is refused.
    """
    held = _MODELS.get(cls.__name__)
    if held is not None and held.__module__ != cls.__module__:
        raise ValueError(f"a model named {cls.__name__!r} is already registered ({held.__module__})")
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
