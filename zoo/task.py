"""The kind of task a dataset poses, and what follows from it for training and comparing runs.

Data modules declare their task; models train for it (cross-entropy or mean squared
error); the CLI, checkpoints and sweeps pick the metric that ranks runs from it.
Neither models nor data import each other for this: both import this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Task = Literal["classification", "regression"]
TASKS: tuple[str, ...] = get_args(Task)


@dataclass(frozen=True)
class Monitor:
    """A logged metric (without its ``val/``/``test/`` prefix) and which way is better."""

    metric: str
    mode: Literal["min", "max"]

    def of(self, stage: str) -> str:
        return f"{stage}/{self.metric}"


def monitor_for(task: str) -> Monitor:
    """What picks the best checkpoint: accuracy for classification, the loss (MSE) for regression."""
    return Monitor("acc", "max") if task == "classification" else Monitor("loss", "min")


def metric_names(task: str) -> tuple[str, ...]:
    """The metrics logged per stage besides the loss (``val/acc``, or ``val/mse`` and ``val/r2``)."""
    return ("acc",) if task == "classification" else ("mse", "r2")
