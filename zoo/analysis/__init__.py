"""Analyses: pure functions of a model and tensors, returning plain data (no Lightning, no logging)."""

from zoo.analysis.task_separation import TaskSeparation, task_separation

__all__ = ["TaskSeparation", "task_separation"]
