"""zoo: a PyTorch Lightning architecture zoo for studying how small networks compute.

``import zoo`` loads nothing heavy: Lightning alone (with the torch compiler, torchmetrics, and
through them matplotlib and SciPy) takes seconds to import, so each name below is imported the
first time it is used (``zoo.load_model``, ``from zoo import ZooModule``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
_HOMES = {
    "ZooDataModule": "zoo.data",
    "ZooError": "zoo.errors",
    "ZooModule": "zoo.models",
    "create_model": "zoo.models",
    "list_models": "zoo.models",
    "load_model": "zoo.checkpoints",
}
__all__ = ["ZooDataModule", "ZooError", "ZooModule", "__version__", "create_model", "list_models", "load_model"]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'zoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
