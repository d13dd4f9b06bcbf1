"""Building blocks shared by the architectures: named activations and MLP blocks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, get_args

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.contract import Probe, Record

ActivationName = Literal["relu", "relu6", "sigmoid", "tanh", "elu", "leaky_relu", "logsigmoid", "gelu", "silu"]

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
    "logsigmoid": nn.LogSigmoid,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}
LinearFactory = Callable[[int, int, int], nn.Module]
"""``(fan_in, fan_out, index) -> layer``: how a block builds its linear map."""

assert tuple(ACTIVATIONS) == get_args(ActivationName), "ActivationName and ACTIVATIONS must list the same names"


def make_activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ZooError(f"unknown activation {name!r}; accepted: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def check_widths(widths: Sequence[int], what: str) -> list[int]:
    """Hidden widths must be positive integers; say which one is not."""
    widths = list(widths)
    for width in widths:
        if isinstance(width, bool) or not isinstance(width, int) or width <= 0:
            raise ZooError(f"{what} must be positive integers, got {widths}")
    return widths


def make_dropout(probability: float) -> nn.Dropout:
    if not 0 <= probability < 1:
        raise ZooError(f"dropout must lie in [0, 1), got {probability}")
    return nn.Dropout(probability)


class Block(nn.Sequential):
    """``linear → [BatchNorm] → activation → Probe``, passing the forward's record to its probe."""

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        for layer in self:
            x = layer(x, record) if isinstance(layer, Probe) else layer(x)
        return x


def mlp_blocks(
    in_features: int,
    widths: Sequence[int],
    activation: str,
    batch_norm: bool = False,
    prefix: str = "fc",
    column: str | None = None,
    linear: LinearFactory | None = None,
) -> nn.ModuleList:
    """One ``linear → [BatchNorm] → activation → Probe`` block per hidden width.

    Probes are named ``<prefix>1``, ``<prefix>2``, ... (within ``column``, if given). Dropout
    is applied between blocks by the caller, so that each block ends at the activations
    the analyses look at. ``linear(fan_in, fan_out, index)`` builds each block's first layer
    (default ``nn.Linear``).
    """
    blocks = nn.ModuleList()
    for index, width in enumerate(widths, start=1):
        layers = [linear(in_features, width, index) if linear else nn.Linear(in_features, width)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers += [make_activation(activation), Probe(f"{prefix}{index}", width, column)]
        blocks.append(Block(*layers))
        in_features = width
    return blocks
