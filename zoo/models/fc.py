"""FCNet: the plain multilayer perceptron, the baseline every other architecture is compared to."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.models.base import ZooModule
from zoo.models.contract import Record
from zoo.models.layers import ActivationName, check_widths, make_dropout, mlp_blocks
from zoo.models.registry import register_model
from zoo.task import Task


@register_model
class FCNet(ZooModule):
    """Flatten → ``Linear → [BatchNorm] → activation → [Dropout]`` per hidden width → ``Linear``.

    Args:
        hidden: widths of the hidden layers, input side first; their activations are
            probed as ``fc1``, ``fc2``, ...
        activation: nonlinearity of every hidden layer.
        dropout: dropout probability after each hidden layer, in [0, 1).
        batch_norm: insert ``BatchNorm1d`` before each activation.
    """

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256),
        activation: ActivationName = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_outputs: int = 10,
        task: Task = "classification",
    ) -> None:
        super().__init__(input_shape, num_outputs, task)
        widths = check_widths(hidden, "model.hidden")
        self.blocks = mlp_blocks(self.in_features, widths, activation, batch_norm)
        self.dropout = make_dropout(dropout)
        self.head = nn.Linear(widths[-1] if widths else self.in_features, num_outputs)

    @property
    def input_layer(self) -> str:
        return "blocks.0.0" if len(self.blocks) else "head"

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = self.dropout(block(x, record))
        return self.head(x)
