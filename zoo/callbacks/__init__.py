"""Callbacks: thin schedulers that run an analysis (or SET's rewiring) during training and write its result."""

from zoo.callbacks.activations import ActivationAnalysis
from zoo.callbacks.schedule import RunAnalysis
from zoo.callbacks.set import SET
from zoo.callbacks.task_separation import TaskSeparation

__all__ = ["SET", "ActivationAnalysis", "RunAnalysis", "TaskSeparation"]
