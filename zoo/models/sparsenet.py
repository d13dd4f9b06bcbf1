"""SparseNet: an MLP whose layers have fixed random sparse connectivity."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.data.datasets import Task
from zoo.errors import ZooError
from zoo.models.base import Edit, ZooModule
from zoo.models.layers import ActivationName, check_widths, make_activation, make_dropout
from zoo.models.registry import register_model
from zoo.models.sparse import SparseBackend, SparseLinear, erdos_renyi_density

DEFAULT_DENSITY = 0.1


@register_model
class SparseNet(ZooModule):
    """Flatten → ``SparseLinear → activation`` per hidden width → output layer.

    Density is either uniform (``density``, default 0.1) or per layer from
    SET's Erdős–Rényi rule (``epsilon``): ε(n_in + n_out)/(n_in · n_out), so
    that larger layers are sparser. Hidden activations are named ``sparse1``, ...

    Args:
        hidden: widths of the hidden layers, input side first.
        density: fraction of connections kept in every sparse layer, in (0, 1].
        epsilon: Erdős–Rényi ε; replaces ``density`` (give one of the two).
        backend: ``masked`` (dense weight × mask), ``sparse`` (CSR kernels) or ``torch_sparse``.
        sparse_output: make the output layer sparse too (default: dense, it is small).
        connectivity_seed: seed of the connectivity; layer l uses ``connectivity_seed + l``.
        activation: nonlinearity of every hidden layer.
        dropout: dropout probability after each hidden layer, in [0, 1).
    """

    def __init__(
        self,
        hidden: Sequence[int] = (1000, 1000),
        density: float | None = None,
        epsilon: float | None = None,
        backend: SparseBackend = "masked",
        sparse_output: bool = False,
        connectivity_seed: int = 0,
        activation: ActivationName = "relu",
        dropout: float = 0.0,
        input_shape: tuple[int, ...] = (1, 28, 28),
        num_outputs: int = 10,
        task: Task = "classification",
    ) -> None:
        super().__init__(input_shape, num_outputs, task)
        if density is not None and epsilon is not None:
            raise ZooError("give either model.density or model.epsilon, not both")
        if epsilon is not None and epsilon <= 0:
            raise ZooError(f"model.epsilon must be positive, got {epsilon}")
        widths = [self.in_features, *check_widths(hidden, "model.hidden")]

        def sparse_layer(index: int, fan_in: int, fan_out: int) -> SparseLinear:
            layer_density = density if epsilon is None else erdos_renyi_density(epsilon, fan_in, fan_out)
            if layer_density is None:
                layer_density = DEFAULT_DENSITY
            if not 0 < layer_density <= 1:
                source = f"epsilon {epsilon} gives" if epsilon is not None else "it is"
                raise ZooError(f"model.density of layer {index} ({fan_in}→{fan_out}) must lie in (0, 1]; {source} {layer_density:.4g}")
            return SparseLinear(fan_in, fan_out, layer_density, backend, seed=connectivity_seed + index)

        self.layers = nn.ModuleList(sparse_layer(index, a, b) for index, (a, b) in enumerate(zip(widths, widths[1:]), start=1))
        self.activations = nn.ModuleList(make_activation(activation) for _ in self.layers)
        self.dropout = make_dropout(dropout)
        self.head = sparse_layer(len(widths), widths[-1], num_outputs) if sparse_output else nn.Linear(widths[-1], num_outputs)

    def forward_with_hidden(self, x: torch.Tensor, edit: Edit | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        hidden: dict[str, torch.Tensor] = {}
        x = x.flatten(1)
        for index, (layer, activation) in enumerate(zip(self.layers, self.activations), start=1):
            x = activation(layer(x))
            x = x if edit is None else edit(f"sparse{index}", x)
            hidden[f"sparse{index}"] = x
            x = self.dropout(x)
        return self.head(x), hidden
