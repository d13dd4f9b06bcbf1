"""FCNet: the plain multilayer perceptron, the baseline every other architecture is compared to."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.errors import ZooError
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
        rank: per hidden layer, the number of components it passes on (``None``: all): the layer
            that reads it is factorized as ``Linear(width, k, bias=False) → Linear(k, next)``.
            ``zoo.surgery.compress`` writes it, so a compressed network stays an FCNet.
    """

    rowwise_after_probes = True  # a chain of blocks: what follows a probe reads only its rows

    def __init__(
        self,
        hidden: Sequence[int] = (512, 256),
        activation: ActivationName = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        rank: Sequence[int | None] | None = None,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_outputs: int = 10,
        task: Task = "classification",
    ) -> None:
        super().__init__(input_shape, num_outputs, task)
        widths = check_widths(hidden, "model.hidden")
        ranks = _check_ranks(rank, widths)

        def linear(fan_in: int, fan_out: int, index: int) -> nn.Module:
            """The layer reading hidden layer ``index - 1``: low-rank when that layer is compressed."""
            k = ranks[index - 2] if index >= 2 else None
            if k is None:
                return nn.Linear(fan_in, fan_out)
            return nn.Sequential(nn.Linear(fan_in, k, bias=False), nn.Linear(k, fan_out))

        self.blocks = mlp_blocks(self.in_features, widths, activation, batch_norm, linear=linear)
        self.dropout = make_dropout(dropout)
        self.head = linear(widths[-1] if widths else self.in_features, num_outputs, len(widths) + 1)

    @property
    def input_layer(self) -> str:
        return "blocks.0.0" if len(self.blocks) else "head"

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = self.dropout(block(x, record))
        return self.head(x)


def _check_ranks(rank: Sequence[int | None] | None, widths: list[int]) -> list[int | None]:
    """One rank (a positive integer, or ``None``) per hidden layer."""
    if rank is None:
        return [None] * len(widths)
    ranks = list(rank)
    valid = all(k is None or (isinstance(k, int) and not isinstance(k, bool) and k > 0) for k in ranks)
    if len(ranks) != len(widths) or not valid:
        raise ZooError(
            f"model.rank must give one positive integer or null per hidden layer ({len(widths)}), got {ranks}"
        )
    return ranks
