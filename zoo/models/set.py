"""Sparse Evolutionary Training (SET, Mocanu et al., Nature Communications 2018): the rewiring policy.

After an epoch, each sparse layer loses the fraction ζ of its connections whose weights are
closest to zero, separately among the positive and the negative weights (as the paper's code
does), together with any weight that is exactly zero, and grows as many new connections at
positions drawn uniformly among those left empty. The number of connections never changes;
new connections start at weight zero (their gradient, ``∂L/∂w_ij = δ_i x_j``, does not depend
on the weight, so they start learning at the next step).

Everything here is a pure function of the layer's weights and a ``torch.Generator``;
:func:`step_generator` derives that generator from the layer's connectivity seed, its index and
the epoch, so that a resumed run draws exactly what an uninterrupted one would. The callback
:class:`zoo.callbacks.SET` decides when to call :func:`set_step` and moves the optimizer's state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from zoo.models.sparse import ConnectionMove, SparseLinear


@dataclass(frozen=True)
class Removal:
    """Which connections SET removes, as a boolean mask over the layer's connections, and why."""

    mask: torch.Tensor
    positive: int  # smallest positive weights removed
    negative: int  # negative weights closest to zero removed
    zero: int  # weights exactly zero (a new connection that never learned, e.g. into a dead unit)


@dataclass(frozen=True)
class SETStep:
    """One SET step on one layer: what was removed and regrown, and how the connections moved."""

    connections: int
    removal: Removal
    regrown: int  # connections grown (as many as removed)
    new: int  # regrown at positions that held no connection before the step
    move: ConnectionMove

    @property
    def removed(self) -> int:
        return self.removal.positive + self.removal.negative + self.removal.zero

    @property
    def changed_fraction(self) -> float:
        """Fraction of the connections that are at a new position after the step."""
        return self.new / self.connections


def select_removal(weights: torch.Tensor, zeta: float) -> Removal:
    """SET's removal: ``round(ζ · #positive)`` smallest positive and ``round(ζ · #negative)`` negative weights
    closest to zero, plus every weight exactly zero. Ties go to the earlier connection (stable order)."""
    weights = weights.detach()
    remove = weights == 0
    counts = {}
    for sign, side in (("positive", weights > 0), ("negative", weights < 0)):
        index = side.nonzero().squeeze(1)
        count = round(zeta * index.numel())
        closest = index[torch.argsort(weights[index].abs(), stable=True)[:count]]
        remove[closest] = True
        counts[sign] = count
    return Removal(remove, counts["positive"], counts["negative"], int((weights == 0).sum()))


def draw_regrowth(
    occupied: torch.Tensor, size: tuple[int, int], count: int, generator: torch.Generator
) -> torch.Tensor:
    """``count`` distinct flat positions of an ``(out, in)`` layer drawn uniformly among those not ``occupied``,
    ascending. Drawn on the CPU, so the same generator gives the same positions on every device."""
    out_features, in_features = size
    taken = torch.zeros(out_features * in_features, dtype=torch.bool)
    taken[occupied.cpu()] = True
    empty = (~taken).nonzero().squeeze(1)
    if count > empty.numel():
        raise ValueError(f"cannot grow {count} connections: only {empty.numel()} positions are empty")
    return empty[torch.randperm(empty.numel(), generator=generator)[:count]].sort().values


def step_generator(seed: int, layer_index: int, epoch: int) -> torch.Generator:
    """The generator of one SET step, a function of the layer's connectivity seed, its index and the epoch."""
    entropy = [seed % 2**63, layer_index, epoch]
    state = np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def set_step(layer: SparseLinear, zeta: float, generator: torch.Generator) -> SETStep:
    """Remove and regrow ``layer``'s connections as SET does, in place; returns what changed.

    Apply the returned step's ``move`` to any per-connection state kept outside the layer
    (the optimizer's moments) so that it follows the connections: kept ones carry their state
    to their new slot, removed and regrown ones start from zero.
    """
    if not 0 < zeta < 1:
        raise ValueError(f"zeta must lie in (0, 1), got {zeta}")
    positions = layer.positions().cpu()
    removal = select_removal(layer.connection_weights().cpu(), zeta)
    removed = positions[removal.mask]
    regrown = draw_regrowth(positions[~removal.mask], (layer.out_features, layer.in_features), len(removed), generator)
    new = int((~torch.isin(regrown, positions)).sum())
    move = layer.rewire(removed, regrown)
    return SETStep(len(positions), removal, len(regrown), new, move)


def fan_in(layer: SparseLinear) -> torch.Tensor:
    """Connections into each output unit, ``(out_features,)``."""
    return torch.bincount(layer.positions() // layer.in_features, minlength=layer.out_features)


def fan_out(layer: SparseLinear) -> torch.Tensor:
    """Connections out of each input, ``(in_features,)``: for the first layer, connections per pixel."""
    return torch.bincount(layer.positions() % layer.in_features, minlength=layer.in_features)
