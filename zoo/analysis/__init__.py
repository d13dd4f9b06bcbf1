"""Analyses: pure functions of a model and tensors, returning plain data (no Lightning, no logging)."""

from zoo.analysis.activations import (
    ActivationAnalysisResult,
    ImagePrior,
    activation_analysis,
    activation_maximization,
)
from zoo.analysis.task_separation import TaskSeparationResult, task_separation

__all__ = [
    "ActivationAnalysisResult",
    "ImagePrior",
    "TaskSeparationResult",
    "activation_analysis",
    "activation_maximization",
    "task_separation",
]
