"""Architectures on one shared base, available by name through the registry."""

from zoo.models.base import ZooModule
from zoo.models.columnet import ColumNet
from zoo.models.contract import Analysable, Probe, Record, SparseLayer
from zoo.models.fc import FCNet
from zoo.models.population import Population
from zoo.models.registry import create_model, list_models, register_model
from zoo.models.sparse import SparseLinear
from zoo.models.sparsenet import SparseNet

__all__ = [
    "Analysable",
    "ColumNet",
    "FCNet",
    "Population",
    "Probe",
    "Record",
    "SparseLayer",
    "SparseLinear",
    "SparseNet",
    "ZooModule",
    "create_model",
    "list_models",
    "register_model",
]
