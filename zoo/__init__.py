"""zoo: a PyTorch Lightning architecture zoo for studying how small networks compute."""

from zoo.checkpoints import load_model
from zoo.data import ZooDataModule
from zoo.errors import ZooError
from zoo.models import ZooModule, create_model, list_models

__version__ = "0.1.0"
__all__ = ["ZooDataModule", "ZooError", "ZooModule", "__version__", "create_model", "list_models", "load_model"]
