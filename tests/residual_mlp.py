"""ResidualMLP: a fourth architecture, written as anyone adding one to zoo would (tests/test_contract.py).

One file, nothing else changed: build the layers, place a probe after each hidden layer,
write ``forward(x, record=None)`` handing ``record`` to each probe. Analyses, callbacks and the
CLI work with it as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from zoo.models import Probe, Record, ZooModule, register_model
from zoo.models.layers import ActivationName, make_activation
from zoo.task import Task


@register_model
class ResidualMLP(ZooModule):
    """Two hidden layers of one width; the second adds its input back (a residual connection).

    Args:
        width: units of both hidden layers.
        activation: nonlinearity of both.
    """

    def __init__(
        self,
        width: int = 32,
        activation: ActivationName = "relu",
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_outputs: int = 10,
        task: Task = "classification",
    ) -> None:
        super().__init__(input_shape, num_outputs, task)
        self.first = nn.Sequential(nn.Linear(self.in_features, width), make_activation(activation))
        self.second = nn.Sequential(nn.Linear(width, width), make_activation(activation))
        self.fc1, self.fc2 = Probe("fc1", width), Probe("fc2", width)
        self.head = nn.Linear(width, num_outputs)

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        h = self.fc1(self.first(x.flatten(1)), record)
        return self.head(self.fc2(self.second(h) + h, record))
