"""FCNet: the plain multilayer perceptron, the baseline every other architecture is compared to."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.data.datasets import Task
from zoo.models.base import Edit, ZooModule
from zoo.models.layers import ActivationName, check_widths, make_dropout, mlp_blocks
from zoo.models.registry import register_model


@register_model
class FCNet(ZooModule):
    """Flatten → ``Linear → [BatchNorm] → activation → [Dropout]`` per hidden width → ``Linear``.

    Args:
        hidden: widths of the hidden layers, input side first; their activations are
            exposed as ``fc1``, ``fc2``, ...
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

    def forward_with_hidden(self, x: torch.Tensor, edit: Edit | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden: dict[str, torch.Tensor] = {}
        x = x.flatten(1)
        for index, block in enumerate(self.blocks, start=1):
            x = block(x) if edit is None else edit(f"fc{index}", block(x))
            hidden[f"fc{index}"] = x
            x = self.dropout(x)
        return self.head(x), hidden
