"""SET's view of a sparse model, declared: its figures and scalars (the function is ``zoo.analysis.topology``'s).

Not registered: it reports what a SET step moved, so SET's callback writes it, not a sweep.
"""

from __future__ import annotations

from typing import Any

import torch
from matplotlib.figure import Figure

from zoo.analyses.declaration import Analysis, Number, Samples
from zoo.analysis.topology import SparseTopology, sparse_topology
from zoo.figures import degree_histograms, pixel_map


def run(model: Any, samples: Samples, options: Any, *, layers: list[str] | None, cache: dict) -> SparseTopology:
    return sparse_topology(model)


def figures(result: SparseTopology, *, history: list[dict]) -> dict[str, Figure]:
    """The first layer's connections per input pixel (image inputs), and every layer's fan-in histogram.

    Their titles leave the epoch to the writer's note (``— epoch 3``, ``— before training``): said once.
    """
    drawn = {}
    pixels = result.pixels
    if pixels is not None:
        name, first = next(iter(result.layers.items()))
        out_features, in_features = first["shape"]
        title = f"Connections per input pixel\n{name} ({in_features}→{out_features})"
        drawn["input_connections"] = pixel_map(pixels, title, "connections")
    degrees = {
        f"{name} ({entry['shape'][1]}→{entry['shape'][0]})": result.fan_in[name]
        for name, entry in result.layers.items()
    }
    drawn["fan_in"] = degree_histograms(degrees, "Fan-in per unit", "fan-in (connections into a unit)")
    return drawn


def histograms(result: SparseTopology) -> dict[str, torch.Tensor]:
    return {f"{name}/fan_in": degrees for name, degrees in result.fan_in.items()}


TOPOLOGY = Analysis(
    name="set",
    title="sparse topology (SET)",
    run=run,
    numbers=(
        Number("changed_fraction", "share of connections moved by a SET step"),
        Number("*/changed_fraction", "share of the layer's connections moved by a SET step"),
    ),
    figures=figures,
    histograms=histograms,
)
