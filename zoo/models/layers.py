"""Building blocks shared by the architectures: named activations and MLP blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable, Literal, get_args

from torch import nn

from zoo.errors import ZooError

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


def mlp_blocks(in_features: int, widths: Sequence[int], activation: str, batch_norm: bool = False) -> nn.ModuleList:
    """One ``Linear → [BatchNorm] → activation`` block per hidden width.

    Dropout is applied between blocks by the caller, so that each block's
    output is the hidden activation the analyses look at.
    """
    blocks = nn.ModuleList()
    for width in widths:
        layers: list[nn.Module] = [nn.Linear(in_features, width)]
        if batch_norm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(make_activation(activation))
        blocks.append(nn.Sequential(*layers))
        in_features = width
    return blocks
