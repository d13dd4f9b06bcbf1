"""zoo: a PyTorch Lightning architecture zoo for studying how small networks compute."""

from zoo.data import ZooDataModule
from zoo.errors import ZooError
from zoo.models import ZooModule, create_model, list_models, load_model

__version__ = "0.1.0"
__all__ = ["ZooDataModule", "ZooError", "ZooModule", "create_model", "list_models", "load_model", "__version__"]
