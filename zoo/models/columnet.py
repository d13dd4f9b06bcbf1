"""ColumNet: parallel MLP columns, each with its own activation, merged by one linear layer.

Every column sees the same input; their last hidden layers are concatenated
and a final linear layer maps them to the outputs (logits, no activation).
Comparing columns inside one network shows what each nonlinearity learns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.base import ZooModule
from zoo.models.contract import Record
from zoo.models.layers import (
    ActivationName,
    LinearFactory,
    check_widths,
    make_activation,
    make_dropout,
    mlp_blocks,
)
from zoo.models.registry import register_model
from zoo.task import Task

DEFAULT_WIDTHS = (100, 50)
DEFAULT_ACTIVATIONS = ("relu", "tanh", "sigmoid")


class Column(TypedDict):
    """One column: hidden widths (input side first) and its activation."""

    hidden: list[int]
    activation: ActivationName


@register_model
class ColumNet(ZooModule):
    """Parallel MLP columns merged by a linear layer.

    Give either ``columns`` (each with its own widths and activation), or the
    shorthand ``hidden`` + ``activations``: one column per activation, all
    with the same widths. With neither, three columns (relu, tanh, sigmoid) of
    widths 100-50. Each column's hidden layers are probed as ``fc1``, ``fc2``, ... within
    column ``col<i>_<activation>`` (so named ``col<i>_<activation>/fc<l>``), column by column.

    When all columns share their widths, each layer of every column is computed
    in one batched product (stacked weights; the first layer, whose input is
    shared, as one matrix product), instead of a Python loop over columns.

    Args:
        columns: the columns, e.g. ``[{hidden: [100, 50], activation: relu}, ...]``.
        hidden: widths shared by all columns (shorthand).
        activations: one column per activation (shorthand).
        dropout: dropout probability after each hidden layer, in [0, 1).
        rank: per column (``None``: all its layers whole), per hidden layer, the number of components
            it passes on (``None``: all). Inside a column the next layer is factorized as
            ``Linear(width, k, bias=False) → Linear(k, next)``; a column's last layer is read through
            ``project.<i>`` (column i from 0; ``Linear(width, k, bias=False)``) and the head reads its k components.
            ``zoo.surgery.compress`` writes it, so a compressed network stays a ColumNet.
    """

    def __init__(
        self,
        columns: list[Column] | None = None,
        hidden: Sequence[int] | None = None,
        activations: Sequence[ActivationName] | None = None,
        dropout: float = 0.0,
        rank: Sequence[Sequence[int | None] | None] | None = None,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_outputs: int = 10,
        task: Task = "classification",
    ) -> None:
        super().__init__(input_shape, num_outputs, task)
        specs = _column_specs(columns, hidden, activations)
        self.column_names = [f"col{index}_{spec['activation']}" for index, spec in enumerate(specs, start=1)]
        ranks = _column_ranks(rank, specs)
        self.columns = nn.ModuleList(
            mlp_blocks(self.in_features, spec["hidden"], spec["activation"], column=name, linear=_reader(ks))
            for spec, name, ks in zip(specs, self.column_names, ranks)
        )
        self.project = nn.ModuleList(  # Identity stores nothing: a full-rank ColumNet's weights are unchanged
            nn.Identity() if ks[-1] is None else nn.Linear(spec["hidden"][-1], ks[-1], bias=False)
            for spec, ks in zip(specs, ranks)
        )
        self.dropout = make_dropout(dropout)
        self.head = nn.Linear(sum(ks[-1] or spec["hidden"][-1] for spec, ks in zip(specs, ranks)), num_outputs)
        full = all(k is None for ks in ranks for k in ks)
        self.uniform = full and len({tuple(spec["hidden"]) for spec in specs}) == 1

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        if self.uniform:
            return self._forward_stacked(x.flatten(1), record)
        return self._forward_per_column(x.flatten(1), record)

    def _forward_stacked(self, x: torch.Tensor, record: Record | None) -> torch.Tensor:
        """All columns at once: ``(C, N, width)`` activations, one product per layer."""
        h = x
        for depth in range(len(self.columns[0])):
            blocks = [column[depth] for column in self.columns]  # Linear, activation, Probe
            weight = torch.stack([block[0].weight for block in blocks])  # (C, out, in)
            bias = torch.stack([block[0].bias for block in blocks])  # (C, out)
            if depth == 0:  # shared input: one (N, in) × (in, C·out) product
                z = (x @ weight.flatten(0, 1).t() + bias.flatten()).view(len(x), *bias.shape).transpose(0, 1)
            else:
                z = torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))
            h = self.dropout(torch.stack([block[2](block[1](z[c]), record) for c, block in enumerate(blocks)]))
        return self.head(h.transpose(0, 1).flatten(1))  # (N, C·width), columns side by side

    def _forward_per_column(self, x: torch.Tensor, record: Record | None) -> torch.Tensor:
        """One column after another: the general case (columns of different widths)."""
        last = []
        for column, project in zip(self.columns, self.project):
            h = x
            for block in column:
                h = self.dropout(block(h, record))
            last.append(project(h))
        return self.head(torch.cat(last, dim=1))


def _reader(ranks: list[int | None]) -> LinearFactory:
    """A column's linear maps: the one reading a compressed layer is factorized through its k components."""

    def linear(fan_in: int, fan_out: int, index: int) -> nn.Module:
        k = ranks[index - 2] if index >= 2 else None
        if k is None:
            return nn.Linear(fan_in, fan_out)
        return nn.Sequential(nn.Linear(fan_in, k, bias=False), nn.Linear(k, fan_out))

    return linear


def _column_ranks(rank: Sequence[Sequence[int | None] | None] | None, specs: list[Column]) -> list[list[int | None]]:
    """One rank (a positive integer, or ``None``) per hidden layer of each column."""
    layers = [len(spec["hidden"]) for spec in specs]
    if rank is None:
        return [[None] * count for count in layers]
    ranks = [[None] * count if ks is None else ks for ks, count in zip(rank, layers)]
    valid = len(rank) == len(layers) and all(
        isinstance(ks, (list, tuple))
        and len(ks) == count
        and all(k is None or (isinstance(k, int) and not isinstance(k, bool) and k > 0) for k in ks)
        for ks, count in zip(ranks, layers)
    )
    if not valid:
        raise ZooError(
            f"model.rank must give per column null, or one positive integer or null per hidden layer "
            f"(columns of {layers} layers), got {list(rank)}"
        )
    return [list(ks) for ks in ranks]


def _column_specs(
    columns: list[Column] | None, hidden: Sequence[int] | None, activations: Sequence[str] | None
) -> list[Column]:
    if columns is not None and (hidden is not None or activations is not None):
        raise ZooError("give either model.columns or the shorthand model.hidden + model.activations, not both")
    if columns is None:
        widths = check_widths(hidden if hidden is not None else DEFAULT_WIDTHS, "model.hidden")
        columns = [
            Column(hidden=widths, activation=name)
            for name in (activations if activations is not None else DEFAULT_ACTIVATIONS)
        ]
    if not columns:
        raise ZooError("ColumNet needs at least one column; got an empty list")
    for index, column in enumerate(columns, start=1):
        check_widths(column["hidden"], f"model.columns[{index}].hidden")
        if not column["hidden"]:
            raise ZooError(f"model.columns[{index}].hidden must list at least one width")
        make_activation(column["activation"])
    return list(columns)
