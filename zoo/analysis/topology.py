"""The topology of a model's sparse layers: fan-in statistics, connections per input, and what a SET step moved.

A pure function of the model (and of the steps that just rewired it), so SET's callback,
a script or a study can compute it alike; the figures are declared in ``zoo.analyses.topology``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from zoo.models.contract import Probe
from zoo.models.set import SETStep, fan_in, fan_out
from zoo.models.sparse import SparseLinear


@dataclass
class SparseTopology:
    """Result of :func:`sparse_topology`; ``layers`` holds per layer its module, shape, connections and fan-in."""

    zeta: float  # the fraction SET rewires at a step
    seconds: float  # what the step took
    layers: dict[str, dict[str, Any]]
    connections: int
    input_connections: list[int]  # connections out of each input of the first layer (per pixel, for images)
    changed_fraction: float | None = None  # share of the connections at new positions; None without a step
    input_shape: tuple[int, ...] = field(default=(), metadata={"json": False})
    fan_in: dict[str, torch.Tensor] = field(default_factory=dict, metadata={"json": False})  # layer -> (out,)
    epoch: int = field(default=0, metadata={"json": False})  # after which epoch (-1: before training)

    def summary(self) -> dict[str, float]:
        """What a step changed: overall, per layer, and its time (nothing before the first step)."""
        if self.changed_fraction is None:
            return {}
        numbers = {"changed_fraction": self.changed_fraction, "seconds": self.seconds}
        for name, entry in self.layers.items():
            numbers[f"{name}/changed_fraction"] = entry["changed_fraction"]
        return numbers

    @property
    def pixels(self) -> torch.Tensor | None:
        """The first layer's connections per input pixel as an ``(H, W)`` image; None for other inputs."""
        shape, first = self.input_shape, next(iter(self.layers.values()))
        if len(shape) < 2 or math.prod(shape) != first["shape"][1]:
            return None
        return torch.tensor(self.input_connections).view(-1, *shape[-2:]).sum(0)


def sparse_topology(
    model: torch.nn.Module, *, steps: dict[str, SETStep] | None = None, zeta: float = 0.0, seconds: float = 0.0,
    epoch: int = 0,
) -> SparseTopology:  # fmt: skip
    """The topology of ``model``'s sparse layers (named by :func:`named_sparse_layers`) after ``steps``."""
    steps = steps or {}
    named = named_sparse_layers(model)
    entries, degrees_of = {}, {}
    for name, (path, layer) in named.items():
        degrees = fan_in(layer).cpu()
        degrees_of[name] = degrees
        entry: dict[str, Any] = {
            "module": path,
            "shape": [layer.out_features, layer.in_features],
            "connections": layer.connections,
            "fan_in": {
                "min": int(degrees.min()),
                "max": int(degrees.max()),
                "mean": float(degrees.float().mean()),
                "std": float(degrees.float().std()) if len(degrees) > 1 else 0.0,
                "counts": torch.bincount(degrees).tolist(),  # units with fan-in 0, 1, 2, ...
            },
        }
        if name in steps:
            step = steps[name]
            removal = step.removal
            entry.update(
                removed={"positive": removal.positive, "negative": removal.negative, "zero": removal.zero},
                regrown=step.regrown,
                new=step.new,
                changed_fraction=step.changed_fraction,
            )
        entries[name] = entry
    changed = None
    if steps:
        changed = sum(step.new for step in steps.values()) / sum(step.connections for step in steps.values())
    first = next(iter(named.values()))[1]
    return SparseTopology(
        zeta=zeta,
        seconds=seconds,
        layers=entries,
        connections=sum(entry["connections"] for entry in entries.values()),
        input_connections=fan_out(first).cpu().tolist(),
        changed_fraction=changed,
        input_shape=tuple(getattr(model, "input_shape", ())),
        fan_in=degrees_of,
        epoch=epoch,
    )


def named_sparse_layers(model: torch.nn.Module) -> dict[str, tuple[str, SparseLinear]]:
    """The model's sparse layers, input side first: ``{name: (path, layer)}``.

    A layer is named as the probe in its block, the activations it computes (SparseNet's ``sparse1``,
    ``sparse2``: the names every other analysis gives them); a sparse output layer ``output``; any
    other by its module path.
    """
    modules = dict(model.named_modules())
    named = {}
    for path, module in modules.items():
        if not isinstance(module, SparseLinear):
            continue
        block = modules.get(path.rpartition(".")[0]) if "." in path else None
        probes = [child.name for child in block.children() if isinstance(child, Probe)] if block is not None else []
        if len(probes) == 1:
            named[probes[0]] = (path, module)
        else:
            named["output" if module is getattr(model, "head", None) else path] = (path, module)
    return named
