"""SparseNet: an MLP whose layers have random sparse connectivity, fixed unless SET rewires it."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.base import ZooModule
from zoo.models.contract import Record
from zoo.models.layers import ActivationName, check_widths, make_dropout, mlp_blocks
from zoo.models.registry import register_model
from zoo.models.sparse import SparseBackend, SparseLinear, erdos_renyi_density
from zoo.task import Task

DEFAULT_DENSITY = 0.1


@register_model
class SparseNet(ZooModule):
    """Flatten → ``SparseLinear → activation → [Dropout]`` per hidden width → output layer.

    Density is either uniform (``density``, default 0.1) or per layer from
    SET's Erdős–Rényi rule (``epsilon``): ε(n_in + n_out)/(n_in · n_out), so
    that larger layers are sparser. Hidden activations are probed as ``sparse1``, ...

    Args:
        hidden: widths of the hidden layers, input side first.
        density: fraction of connections kept in every sparse layer, in (0, 1].
        epsilon: Erdős–Rényi ε; replaces ``density`` (give one of the two).
        backend: ``masked`` (dense weight × mask), ``sparse`` (CSR kernels) or ``torch_sparse``.
        sparse_output: make the output layer sparse too (default: dense, it is small).
        connectivity_seed: seed of the connectivity; layer l uses ``connectivity_seed + l``.
        connections: exact number of connections of each sparse layer, input side first; replaces
            ``density`` and ``epsilon``. ``zoo.surgery`` writes it, so that a pruned network's tensors
            (whose connectivity the checkpoint holds) have the sizes its config builds.
        activation: nonlinearity of every hidden layer.
        dropout: dropout probability after each hidden layer, in [0, 1).
    """

    rowwise_after_probes = True  # a chain of blocks: what follows a probe reads only its rows

    def __init__(
        self,
        hidden: Sequence[int] = (1000, 1000),
        density: float | None = None,
        epsilon: float | None = None,
        backend: SparseBackend = "masked",
        sparse_output: bool = False,
        connectivity_seed: int = 0,
        connections: Sequence[int] | None = None,
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
        widths = check_widths(hidden, "model.hidden")
        if connections is not None and len(connections) != len(widths) + sparse_output:
            raise ZooError(
                f"model.connections must give one count per sparse layer ({len(widths) + sparse_output}), "
                f"got {list(connections)}"
            )

        def sparse_layer(fan_in: int, fan_out: int, index: int) -> SparseLinear:
            layer_density = density if epsilon is None else erdos_renyi_density(epsilon, fan_in, fan_out)
            if connections is not None:  # round(density · size) gives back the count exactly
                layer_density = connections[index - 1] / (fan_in * fan_out)
            if layer_density is None:
                layer_density = DEFAULT_DENSITY
            if not 0 < layer_density <= 1:
                source = f"epsilon {epsilon} gives" if epsilon is not None else "it is"
                raise ZooError(
                    f"model.density of layer {index} ({fan_in}→{fan_out}) must lie in (0, 1]; "
                    f"{source} {layer_density:.4g}"
                )
            return SparseLinear(fan_in, fan_out, layer_density, backend, seed=connectivity_seed + index)

        self.blocks = mlp_blocks(self.in_features, widths, activation, prefix="sparse", linear=sparse_layer)
        self.dropout = make_dropout(dropout)
        last = widths[-1] if widths else self.in_features
        self.head = sparse_layer(last, num_outputs, len(widths) + 1) if sparse_output else nn.Linear(last, num_outputs)

    @property
    def sparse_layers(self) -> list[SparseLinear]:
        """The sparse layers, input side first (the output layer too when it is sparse)."""
        return [module for module in self.modules() if isinstance(module, SparseLinear)]

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        x = x.flatten(1)
        for block in self.blocks:
            x = self.dropout(block(x, record))
        return self.head(x)
