"""Analyses: pure functions of a model and tensors, returning plain data (no Lightning, no logging)."""

from zoo.analysis.activations import ActivationAnalysis, ImagePrior, activation_analysis, activation_maximization
from zoo.analysis.task_separation import TaskSeparation, task_separation

__all__ = ["ActivationAnalysis", "ImagePrior", "TaskSeparation", "activation_analysis", "activation_maximization", "task_separation"]
