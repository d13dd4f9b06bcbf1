"""Callbacks: thin schedulers that run an analysis during training and report its result."""

from zoo.callbacks.activations import ActivationAnalysis
from zoo.callbacks.stopwatch import Stopwatch
from zoo.callbacks.task_separation import TaskSeparation

__all__ = ["ActivationAnalysis", "Stopwatch", "TaskSeparation"]
