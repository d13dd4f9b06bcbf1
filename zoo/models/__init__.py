"""Architectures on one shared base, available by name through the registry."""

from zoo.models.base import ZooModule
from zoo.models.columnet import ColumNet
from zoo.models.fc import FCNet
from zoo.models.registry import create_model, list_models, register_model

__all__ = ["ColumNet", "FCNet", "ZooModule", "create_model", "list_models", "register_model"]
