"""Weight norms: a fifth analysis, written as anyone adding one to zoo would (tests/test_analyses.py).

One file, nothing else changed: a pure function, its result with ``summary()``, and one
declaration. The callbacks, the CLI, a sweep's ``analyses:``, its rows, ``summary.md``,
``scripts/analyze.py`` and the TensorBoard dashboard read the declaration as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from matplotlib.figure import Figure
from torch import nn

from zoo.analyses import Analysis, Number, Samples, register_analysis


@dataclass(frozen=True)
class WeightNormOptions:
    norm: Literal["frobenius", "spectral"] = "frobenius"


@dataclass
class WeightNorms:
    """Every linear layer's weight norm, by module path (dots as underscores)."""

    norm: str
    norms: dict[str, float]

    def summary(self) -> dict[str, float]:
        return {f"{layer}/norm": value for layer, value in self.norms.items()}


def weight_norms(model: nn.Module, *, norm: str = "frobenius") -> WeightNorms:
    """The norm of each ``nn.Linear``'s weight: Frobenius, or spectral (the largest singular value)."""
    order = "fro" if norm == "frobenius" else 2
    norms = {
        path.replace(".", "_"): torch.linalg.matrix_norm(module.weight.detach(), ord=order).item()
        for path, module in model.named_modules()
        if isinstance(module, nn.Linear)
    }
    return WeightNorms(norm, norms)


def run(model: Any, samples: Samples, options: WeightNormOptions, *, layers, cache) -> WeightNorms:
    return weight_norms(model, norm=options.norm)


def figures(result: WeightNorms, *, history: list[dict]) -> dict[str, Figure]:
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    axes.bar(list(result.norms), list(result.norms.values()))
    axes.set_ylabel(f"{result.norm} norm of the weights")
    axes.set_title("Weight norm per layer")
    return {"norms": figure}


def describe(result: WeightNorms) -> str:
    return "\n".join(f"  {layer:<12}{value:.4f}" for layer, value in result.norms.items())


WEIGHT_NORMS = register_analysis(
    Analysis(
        name="weight_norms",
        title="weight norms",
        run=run,
        options=WeightNormOptions,
        numbers=(Number("*/norm", "weight norm (mean over layers)", compared=True, drawn=("distribution",)),),
        figures=figures,
        layout={"weight norm per layer": r".*/norm"},
        describe=describe,
    )
)
