"""Callbacks: thin schedulers that run an analysis during training and write its result."""

from zoo.callbacks.activations import ActivationAnalysis
from zoo.callbacks.task_separation import TaskSeparation

__all__ = ["ActivationAnalysis", "TaskSeparation"]
