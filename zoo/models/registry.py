"""A small model registry in the timm spirit: ``list_models()`` and ``create_model(name)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch

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


def load_model(checkpoint: str | Path | dict, map_location: str | torch.device = "cpu"):
    """Rebuild a trained model from a zoo checkpoint alone (architecture, hyper-parameters, weights).

    ``checkpoint`` is a path, or a dictionary already read with :func:`read_checkpoint`.
    """
    if not isinstance(checkpoint, dict):
        checkpoint = read_checkpoint(checkpoint, map_location)
    checkpoint_path, name = checkpoint["zoo"]["path"], checkpoint["zoo"]["model"]
    if name not in _MODELS:
        raise ZooError(f"{checkpoint_path}: holds a {name}, which this version of zoo does not have; accepted: {', '.join(list_models())}")
    model = _MODELS[name](**constructor_arguments(checkpoint["hyper_parameters"]))
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as error:
        raise ZooError(f"{checkpoint_path}: its weights do not fit a {name} with its saved hyper-parameters ({str(error).splitlines()[0]})") from None
    return model


def read_checkpoint(checkpoint_path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dictionary, or a clear error for a missing, corrupt or foreign file."""
    path = Path(checkpoint_path)
    if not path.is_file():
        raise ZooError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)  # loading must not run code
    except Exception as error:
        first_line = (str(error).splitlines() or [""])[0][:160]
        raise ZooError(f"{path}: not a readable checkpoint; it is corrupt, truncated or another kind of file ({type(error).__name__}: {first_line})") from None
    if not isinstance(checkpoint, dict) or "zoo" not in checkpoint:
        raise ZooError(f"{path}: not a zoo checkpoint (it has no record of the architecture that wrote it)")
    checkpoint["zoo"] = {**checkpoint["zoo"], "path": str(path)}  # for messages about this file
    return checkpoint


def constructor_arguments(hyper_parameters: dict) -> dict:
    """Saved hyper-parameters without Lightning's private entries (``_instantiator`` and the like)."""
    return {key: value for key, value in hyper_parameters.items() if not key.startswith("_")}


def check_checkpoint(checkpoint: dict, model) -> None:
    """Refuse, with one clear message, a checkpoint (as :func:`read_checkpoint` returns it) that ``model`` cannot load."""
    checkpoint_path, name = checkpoint["zoo"]["path"], checkpoint["zoo"]["model"]
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    saved = {key: tuple(value.shape) for key, value in checkpoint["state_dict"].items()}
    for key in sorted(expected.keys() | saved.keys()):
        if expected.get(key) != saved.get(key):
            there, here = saved.get(key, "absent"), expected.get(key, "absent")
            raise ZooError(f"{checkpoint_path}: does not fit this {name}: {key} is {there} in the checkpoint and {here} in the model built by this configuration")
