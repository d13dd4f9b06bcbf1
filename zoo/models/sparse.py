"""``SparseLinear``: a linear layer with random sparse connectivity, fixed unless rewired (SET).

Three backends compute the same function:

- ``masked``: a dense weight times a 0/1 mask. Simple and fast at high
  density; the gradient is zero off the mask because d(W ⊙ M)/dW = M.
- ``sparse``: only the connected weights are parameters, a vector in CSR order.
  Forward is a CSR sparse × dense product; backward computes the input gradient
  with the transposed CSR matrix and the weight gradient only at the connected
  positions (sampled dense-dense product, SDDMM). Memory and work scale with
  the number of connections, not with in × out.
- ``torch_sparse``: the same parameters through the torch-sparse package's
  ``SparseTensor.matmul`` kernels (optional extra ``zoo[sparse]``).

Connectivity is drawn from ``seed``; weights from the global RNG (as
``nn.Linear`` does), scaled to each unit's actual fan-in so that a sparse layer
starts with the same activation scale as a dense one. :meth:`SparseLinear.rewire`
replaces connections in place (dynamic sparse training, e.g. SET in
:mod:`zoo.models.set`): the connection count, and so every tensor's size, stays
the same, and the parameter and buffer objects stay those the optimizer and the
checkpoint know.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

from zoo.errors import ZooError
from zoo.models.contract import SparseLayer

SparseBackend = Literal["masked", "sparse", "torch_sparse"]

# zoo relies on CSR on purpose and tests it; torch's "beta" notice would greet every run.
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")


def random_connectivity(in_features: int, out_features: int, density: float, seed: int) -> torch.Tensor:
    """A boolean ``(out, in)`` mask with exactly ``round(density · in · out)`` connections (at least one)."""
    size = in_features * out_features
    count = max(1, round(density * size))
    chosen = torch.randperm(size, generator=torch.Generator().manual_seed(seed))[:count]
    mask = torch.zeros(size, dtype=torch.bool)
    mask[chosen] = True
    return mask.view(out_features, in_features)


def erdos_renyi_density(epsilon: float, in_features: int, out_features: int) -> float:
    """SET's Erdős–Rényi density ε(n_in + n_out)/(n_in · n_out) (Mocanu et al. 2018)."""
    return epsilon * (in_features + out_features) / (in_features * out_features)


def torch_sparse_available() -> bool:
    return importlib.util.find_spec("torch_sparse") is not None


class SparseLinear(SparseLayer):
    """``y = x Wᵀ + b`` with ``W`` zero outside a random connectivity mask (moved only by :meth:`rewire`).

    Args:
        in_features, out_features: layer size.
        density: fraction of the in × out connections that exist, in (0, 1].
        backend: ``masked``, ``sparse`` or ``torch_sparse`` (see the module docstring).
        seed: seed of the connectivity pattern.
        bias: add a learned bias.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        density: float,
        backend: SparseBackend = "masked",
        seed: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        if not 0 < density <= 1:
            raise ZooError(f"density must lie in (0, 1], got {density}")
        if backend not in get_args(SparseBackend):
            raise ZooError(f"unknown sparse backend {backend!r}; accepted: {', '.join(get_args(SparseBackend))}")
        if backend == "torch_sparse" and not torch_sparse_available():
            raise ZooError(
                "backend 'torch_sparse' needs the torch-sparse package, which compiles from source: in zoo's checkout, "
                "pip install --no-build-isolation -e '.[sparse]' (docs/sparse.md); or use backend 'sparse' or 'masked'"
            )
        self.in_features, self.out_features, self.density, self.backend = in_features, out_features, density, backend
        self.seed = seed

        mask = random_connectivity(in_features, out_features, density, seed)
        fan_in = mask.sum(1, keepdim=True).clamp_min(1)
        bound = 1 / fan_in.sqrt()  # nn.Linear's default bound, with the actual fan-in
        weight = (torch.rand(out_features, in_features) * 2 - 1) * bound * mask
        self.bias = nn.Parameter((torch.rand(out_features) * 2 - 1) * bound.squeeze(1)) if bias else None

        if backend == "masked":
            self.weight = nn.Parameter(weight)
            self.register_buffer("mask", mask)
            return
        self.values = nn.Parameter(weight[mask])  # row-major: CSR order
        for name, buffer in _csr_buffers(mask).items():
            self.register_buffer(name, buffer)

    @property
    def connections(self) -> int:
        return int(self.mask.sum()) if self.backend == "masked" else self.values.numel()

    def nonzero_parameters(self) -> int:
        """Connections plus biases: what the layer really learns, whatever the backend stores."""
        return self.connections + (self.bias.numel() if self.bias is not None else 0)

    def connectivity(self) -> torch.Tensor:
        """The boolean ``(out, in)`` mask, for analyses and tests."""
        if self.backend == "masked":
            return self.mask
        mask = torch.zeros(self.out_features, self.in_features, dtype=torch.bool, device=self.values.device)
        mask[self.rows, self.cols] = True
        return mask

    @property
    def connection_parameter(self) -> nn.Parameter:
        """The parameter that holds the connections' weights: ``weight`` (masked) or ``values`` (CSR)."""
        return self.weight if self.backend == "masked" else self.values

    def positions(self) -> torch.Tensor:
        """The connections as flat row-major positions ``row · in_features + col``, ascending (CSR order)."""
        if self.backend == "masked":
            return self.mask.flatten().nonzero().squeeze(1)
        return self.rows * self.in_features + self.cols

    def connection_weights(self) -> torch.Tensor:
        """The connections' weights, in the order of :meth:`positions` (a detached view or copy)."""
        if self.backend == "masked":
            return self.weight.detach().flatten()[self.positions()]
        return self.values.detach()

    @torch.no_grad()
    def assign(self, weight: torch.Tensor, mask: torch.Tensor) -> None:
        """Take the connectivity ``mask`` (as many connections as the layer has) and its weights, in place."""
        if int(mask.sum()) != self.connections or mask.shape != (self.out_features, self.in_features):
            raise ValueError(f"assign keeps the layer's shape and connection count ({self.connections})")
        if self.backend == "masked":
            self.mask.copy_(mask)
            self.weight.copy_(weight * mask)
            return
        for name, buffer in _csr_buffers(mask.to(self.rows.device)).items():
            getattr(self, name).copy_(buffer)
        self.values.copy_(weight[mask])

    @torch.no_grad()
    def rewire(self, removed: torch.Tensor, regrown: torch.Tensor) -> ConnectionMove:
        """Remove connections and grow as many new ones, in place; new connections start at weight zero.

        ``removed`` are flat positions (see :meth:`positions`) of present connections; ``regrown``
        flat positions that are empty once ``removed`` are gone (a position may be removed and
        regrown: it then starts afresh). The connection count stays constant, so every tensor
        keeps its size, and the weight parameter and the index buffers stay the same objects,
        updated in place. The kept connections keep their weights (on the CSR backends they move
        to their new slots in CSR order) and their gradient; removed and regrown ones are zero.
        Returns the :class:`ConnectionMove`, to apply to any other per-connection state (an
        optimizer's moments) the same way.
        """
        device = self.connection_parameter.device
        removed, regrown = removed.to(device), regrown.to(device)
        old = self.positions()
        present = torch.isin(removed, old)
        kept = ~torch.isin(old, removed)
        if removed.numel() != regrown.numel():
            raise ValueError(f"rewire keeps the connection count: {removed.numel()} removed, {regrown.numel()} regrown")
        if not present.all():
            raise ValueError(f"position {int(removed[~present][0])} is removed but holds no connection")
        if torch.isin(regrown, old[kept]).any() or regrown.unique().numel() != regrown.numel():
            raise ValueError("regrown positions must be distinct and not connected after the removal")
        if self.backend == "masked":
            move = ConnectionMove(changed=torch.cat([removed, regrown]))
            self.mask.view(-1)[removed] = False
            self.mask.view(-1)[regrown] = True
        else:
            new, order = torch.sort(torch.cat([old[kept], regrown]))
            slots = torch.arange(old.numel(), device=device)
            move = ConnectionMove(source=torch.cat([slots[kept], slots.new_full(regrown.shape, -1)])[order])
            rows, cols = new // self.in_features, new % self.in_features
            transposed = torch.argsort(cols * self.out_features + rows)
            self.rows.copy_(rows)
            self.cols.copy_(cols)
            self.crow.copy_(_compressed(rows, self.out_features))
            self.transposed.copy_(transposed)
            self.crow_t.copy_(_compressed(cols[transposed], self.in_features))
        parameter = self.connection_parameter
        move.apply_(parameter.data)
        if parameter.grad is not None:
            move.apply_(parameter.grad)
        return move

    def dense_weight(self) -> torch.Tensor:
        """``W`` as a dense ``(out, in)`` tensor (zeros off the mask), differentiable."""
        if self.backend == "masked":
            return self.weight * self.mask
        return torch.zeros(
            self.out_features, self.in_features, dtype=self.values.dtype, device=self.values.device
        ).index_put((self.rows, self.cols), self.values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "masked" or self.dense_equivalent:
            return nn.functional.linear(x, self.dense_weight(), self.bias)
        if self.backend == "sparse":
            y = CSRLinearFunction.apply(x, self.values, self.crow, self.cols, self.crow_t, self.rows, self.transposed)
        else:
            y = self._torch_sparse(x)
        return y if self.bias is None else y + self.bias

    def _torch_sparse(self, x: torch.Tensor) -> torch.Tensor:
        from torch_sparse import SparseTensor

        weight = SparseTensor(
            row=self.rows,
            col=self.cols,
            value=self.values,
            sparse_sizes=(self.out_features, self.in_features),
            is_sorted=True,
        )
        return weight.matmul(x.t()).t()

    def extra_repr(self) -> str:
        size = f"in_features={self.in_features}, out_features={self.out_features}"
        return f"{size}, density={self.density:.4g}, backend={self.backend}"


@dataclass(frozen=True)
class ConnectionMove:
    """Where a rewiring moved each connection, for every tensor that holds one value per connection.

    Masked layers keep one slot per possible position: ``changed`` (the removed and regrown
    positions) are zeroed. CSR layers keep one slot per connection in CSR order: new slot ``i``
    takes old slot ``source[i]``, or zero where ``source[i]`` is -1 (a regrown connection).
    """

    changed: torch.Tensor | None = None
    source: torch.Tensor | None = None

    def apply_(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move ``tensor`` (shaped like the connection parameter) in place; returns it."""
        if self.changed is not None:
            tensor.view(-1)[self.changed] = 0
        else:
            moved = tensor[self.source.clamp_min(0)]
            tensor.copy_(moved.masked_fill_(self.source < 0, 0))
        return tensor


class CSRLinearFunction(torch.autograd.Function):
    """``x Wᵀ`` for a CSR ``W`` whose backward touches only the connected weights.

    Forward:   Y  = (W Xᵀ)ᵀ                          sparse × dense
    Backward:  ∂X = (Wᵀ ∂Yᵀ)ᵀ                        sparse × dense, with Wᵀ in CSR
               ∂w = (∂Yᵀ X) sampled at W's pattern   SDDMM: nnz dot products of length N
    """

    @staticmethod
    def forward(ctx, x, values, crow, cols, crow_t, rows, transposed):
        out_features, in_features = crow.numel() - 1, crow_t.numel() - 1
        weight = _csr(crow, cols, values, (out_features, in_features))
        ctx.save_for_backward(x, values, crow, cols, crow_t, rows, transposed)
        return (weight @ x.t()).t()

    @staticmethod
    def backward(ctx, grad_output):
        x, values, crow, cols, crow_t, rows, transposed = ctx.saved_tensors
        out_features, in_features = crow.numel() - 1, crow_t.numel() - 1
        grad_x = grad_values = None
        if ctx.needs_input_grad[0]:
            # index_select: 4-5× faster than values[transposed] on the CPU
            weight_t = _csr(
                crow_t,
                rows.index_select(0, transposed),
                values.index_select(0, transposed),
                (in_features, out_features),
            )
            grad_x = (weight_t @ grad_output.t()).t()
        if ctx.needs_input_grad[1]:
            pattern = _csr(crow, cols, values.detach(), (out_features, in_features))
            # strided operands as they come: making them contiguous first costs more than it saves
            grad_values = torch.sparse.sampled_addmm(pattern, grad_output.t(), x, beta=0.0).values()
        return grad_x, grad_values, None, None, None, None, None


def _csr_buffers(mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """The index buffers of a CSR layer with connectivity ``mask``: rows and columns, and those of Wᵀ."""
    out_features, in_features = mask.shape
    rows, cols = mask.nonzero(as_tuple=True)  # row-major: CSR order
    transposed = torch.argsort(cols * out_features + rows)  # CSR order of Wᵀ
    return {
        "rows": rows,
        "cols": cols,
        "crow": _compressed(rows, out_features),
        "transposed": transposed,
        "crow_t": _compressed(cols[transposed], in_features),
    }


def _compressed(indices: torch.Tensor, length: int) -> torch.Tensor:
    """CSR row pointers from sorted row indices."""
    counts = torch.bincount(indices, minlength=length)
    return torch.cat([counts.new_zeros(1), counts.cumsum(0)])


def _csr(crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_csr_tensor(crow, cols, values, size, check_invariants=False)
