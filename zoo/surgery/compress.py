"""Compress a layer to its top-k principal components, folded into a low-rank next layer.

The compression analysis (``zoo.analysis.activations.compression``) replaces a layer's
activations ``h`` by ``μ + (h − μ) V Vᵀ`` (``V``: the top-k principal axes of the judged
samples) and measures the task metric. The next layer computes ``W h + b``; with the
projection it computes ``(W V)(Vᵀ h) + W(μ − V Vᵀ μ) + b``: a factorization through k units,
which FCNet's ``rank`` hyper-parameter builds. The exported network computes exactly what the
analysis scored, with ``k (width + next)`` weights in place of ``width · next``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from zoo.analysis.activations import collect_activations, compression, principal_components
from zoo.errors import ZooError
from zoo.models import FCNet, ZooModule
from zoo.surgery.layout import copy_matching, dense_weight, metric, outputs_of, rebuild, unit_groups


@dataclass
class CompressionReport:
    """Per compressed layer, the k chosen and what the analysis predicted; the metric on the judged data."""

    k: dict[str, int] = field(default_factory=dict)  # components kept per layer (absent: left whole)
    widths: dict[str, int] = field(default_factory=dict)
    predicted: dict[str, float] = field(default_factory=dict)  # the analysis's metric at that k
    not_smaller: dict[str, int] = field(default_factory=dict)  # the k found where factorizing would not save weights
    metric: str = ""
    before: float = float("nan")  # on the judged samples
    after: float = float("nan")
    parameters_before: dict[str, int] = field(default_factory=dict)
    parameters_after: dict[str, int] = field(default_factory=dict)
    samples: int = 0


@torch.no_grad()
def compress(model: ZooModule, inputs: torch.Tensor, layer: str, k: int, *, chunk_size: int = 4096) -> ZooModule:
    """``model`` with ``layer`` projected on the top-``k`` principal axes of its activations on ``inputs``."""
    if not isinstance(model, FCNet):
        raise ZooError(f"compression exports FCNets (a low-rank next layer); this is a {type(model).__name__}")
    groups = {group.probe: (index, group) for index, group in enumerate(unit_groups(model))}
    if layer not in groups:
        raise ZooError(f"unknown layer {layer!r}; {type(model).__name__}'s hidden layers are: {', '.join(groups)}")
    index, group = groups[layer]
    width = model.probes[layer].units
    if not 1 <= k <= width:
        raise ZooError(f"k for {layer} must lie in 1..{width} (its width), got {k}")
    with model.analysis_mode():
        values = collect_activations(model, inputs, [layer], chunk_size)[layer]
    mean, _, axes = principal_components(values)
    basis = axes[:, :k]
    reader = model.get_submodule(group.consumer)
    if reader.bias is None:  # already low-rank: the map it computes is up · down
        up = model.get_submodule(group.consumer.rsplit(".", 1)[0] + ".1")
        weight, bias = up.weight @ reader.weight, up.bias
    else:
        weight, bias = dense_weight(reader), reader.bias
    ranks = list(model.hparams.get("rank") or [None] * len(groups))
    ranks[index] = k
    compressed = rebuild(model, rank=ranks)
    copy_matching(model, compressed)
    factor_path = group.consumer if reader.bias is None else f"{group.consumer}.0"  # the new first factor
    down = compressed.get_submodule(factor_path)
    up = compressed.get_submodule(factor_path.rsplit(".", 1)[0] + ".1")
    down.weight.copy_(basis.t())
    up.weight.copy_(weight @ basis)
    up.bias.copy_(bias + weight @ (mean - basis @ (basis.t() @ mean)))
    return compressed


@torch.no_grad()
def compress_to_tolerance(
    model: ZooModule, inputs: torch.Tensor, targets: torch.Tensor, tolerance: float, *, chunk_size: int = 4096
) -> tuple[ZooModule, CompressionReport]:
    """Each layer in turn to the smallest k the compression analysis finds within ``tolerance`` on these samples.

    The tolerance bounds the whole network's drop: a layer may use what the layers before it left
    of it (``tolerance`` minus the drop so far), so the result stays within ``tolerance`` of the
    original on the judged samples.
    """
    if not isinstance(model, FCNet):  # refused before the whole search, as compress() refuses one layer
        raise ZooError(f"compression exports FCNets (a low-rank next layer); this is a {type(model).__name__}")
    report = CompressionReport(parameters_before=model.parameter_counts(), samples=len(inputs))
    report.metric, report.before = metric(model, outputs_of(model, inputs, chunk_size), targets)
    current = model
    for layer in list(model.probes):
        with current.analysis_mode():
            values = collect_activations(current, inputs, [layer], chunk_size)[layer]
            mean, _, axes = principal_components(values)
            _, now = metric(current, outputs_of(current, inputs, chunk_size), targets)
            left = tolerance - (report.before - now)
            found = compression(current, inputs, targets, layer, mean, axes, chunk_size=chunk_size, tolerance=left)
        width, reader = values.shape[1], _reader_width(current, layer)
        report.widths[layer] = width
        if found.smallest_k >= width:
            continue  # no k below the width keeps the metric: the layer stays whole
        if found.smallest_k * (width + reader) >= width * reader:
            report.not_smaller[layer] = found.smallest_k  # k (width + next) weights would be no fewer: stays whole
            continue
        report.k[layer] = found.smallest_k
        report.predicted[layer] = found.score[found.k.index(found.smallest_k)]
        current = compress(current, inputs, layer, found.smallest_k, chunk_size=chunk_size)
    report.after = metric(current, outputs_of(current, inputs, chunk_size), targets)[1]
    report.parameters_after = current.parameter_counts()
    return current, report


def _reader_width(model: ZooModule, layer: str) -> int:
    """How many outputs the layer reading ``layer`` has (a low-rank reader's second factor's)."""
    group = next(group for group in unit_groups(model) if group.probe == layer)
    reader = model.get_submodule(group.consumer)
    if reader.bias is None:
        return model.get_submodule(group.consumer.rsplit(".", 1)[0] + ".1").out_features
    return reader.out_features
