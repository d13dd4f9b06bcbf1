"""What both analyses mean by a dead unit, defined once.

A unit is **dead** on some data when its activation does not vary over that data: it
then carries no information about the input, whatever constant it sits at (a ReLU at
exactly 0, a saturated sigmoid or tanh, an ELU stuck near −1, a GELU or SiLU deep in its
negative tail). "Does not vary" is relative to the layer, so the definition does not
depend on the activation function's scale:

    dead(h)  ⇔  Var_i(a_ih) ≤ tolerance · max_h' Var_i(a_ih')          (tolerance 1e-6)

The variance is taken over the analysed samples, so the verdict is only as good as the
data: a unit silent on 2,000 validation images may fire on the training set. Both
analyses report which data they judged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

DEAD_TOLERANCE = 1e-6


@dataclass
class DeadUnits:
    """The dead units of one layer, split by the constant they sit at."""

    never_active: list[int]  # exactly 0 on every sample: a dead ReLU, the classic case
    constant: list[int]  # another constant, or variations too small to carry information (firing rarely, weakly)

    @property
    def all(self) -> list[int]:
        return sorted(self.never_active + self.constant)


def dead_units(activations: torch.Tensor, tolerance: float = DEAD_TOLERANCE) -> DeadUnits:
    """Dead units of ``(N, H)`` activations (see the module docstring for the definition)."""
    dead = dead_mask(activations, tolerance)
    never = dead & (activations == 0).all(0)
    return DeadUnits(never.nonzero().flatten().tolist(), (dead & ~never).nonzero().flatten().tolist())


def dead_mask(activations: torch.Tensor, tolerance: float = DEAD_TOLERANCE) -> torch.Tensor:
    """``(..., H)`` booleans: which units of ``(..., N, H)`` activations are dead (:func:`dead_units`' ``all``).

    Leading dimensions are separate layers judged at once (a population's members), each on its own largest variance.
    """
    # a ratio to the layer's largest, the same with n or n − 1; n keeps it defined on one sample (all constant)
    variance = activations.double().var(-2, correction=0)
    return variance <= tolerance * variance.amax(-1, keepdim=True)
