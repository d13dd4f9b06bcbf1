"""Compress a layer to its top-k principal components, folded into a low-rank next layer.

The compression analysis (``zoo.analysis.activations.compression``) replaces a layer's
activations ``h`` by ``μ + (h − μ) V Vᵀ`` (``V``: the top-k principal axes of the judged
samples) and measures the task metric. The next layer computes ``W h + b``; with the
projection it computes ``(W V)(Vᵀ h) + W(μ − V Vᵀ μ) + b``: a factorization through k units,
which FCNet's and ColumNet's ``rank`` hyper-parameters build. The exported network computes
exactly what the analysis scored, with ``k (width + next)`` weights in place of ``width · next``.
A ColumNet column's last layer is read by the head, among the other columns: its block of the
head's weights is the one factorized (``project.<i>`` takes ``Vᵀ``, the head's block ``W V``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from zoo.analysis.activations import collect_activations, compression, principal_components
from zoo.errors import ZooError
from zoo.models import ColumNet, FCNet, ZooModule
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
    _check_compressible(model)
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
    block = slice(group.offset, group.offset + width)  # this layer's inputs of its reader
    if group.up is None:  # the full map, or the head's block of this column: its columns are this layer's
        outer, start, count = model.get_submodule(group.consumer), group.offset, width
        weight = dense_weight(outer)[:, block]
    else:  # already low-rank: the map it computes is up · down
        outer, start, count = model.get_submodule(group.up), group.up_offset, reader.out_features
        weight = outer.weight[:, start : start + count] @ reader.weight[:, block]
    compressed = rebuild(model, rank=_ranks(model, layer, k))
    copy_matching(model, compressed)
    new = unit_groups(compressed)[index]
    compressed.get_submodule(new.consumer).weight.copy_(basis.t())
    up = compressed.get_submodule(new.up)
    old = dense_weight(outer)  # the other columns' blocks of a ColumNet's head stay as they were
    up.weight.copy_(torch.cat([old[:, :start], weight @ basis, old[:, start + count :]], dim=1))
    up.bias.copy_(outer.bias + weight @ (mean - basis @ (basis.t() @ mean)))
    return compressed


def _check_compressible(model: ZooModule) -> None:
    if not isinstance(model, (FCNet, ColumNet)):
        name = type(model).__name__
        raise ZooError(f"compression exports FCNets and ColumNets (a low-rank next layer); this is a {name}")


def _ranks(model: ZooModule, layer: str, k: int) -> list:
    """The ``rank`` hyper-parameter with ``layer`` at ``k``: FCNet's one list, ColumNet's one per column."""

    def update(given: list | None, blocks) -> list:
        ranks = list(given or [None] * len(blocks))
        return [k if block[-1].name == layer else rank for rank, block in zip(ranks, blocks)]

    if isinstance(model, FCNet):
        return update(model.hparams.get("rank"), model.blocks)
    given = model.hparams.get("rank") or [None] * len(model.columns)
    return [update(ranks, column) for ranks, column in zip(given, model.columns)]


@torch.no_grad()
def compress_to_tolerance(
    model: ZooModule, inputs: torch.Tensor, targets: torch.Tensor, tolerance: float, *, chunk_size: int = 4096
) -> tuple[ZooModule, CompressionReport]:
    """Each layer in turn to the smallest k the compression analysis finds within ``tolerance`` on these samples.

    The tolerance bounds the whole network's drop: a layer may use what the layers before it left
    of it (``tolerance`` minus the drop so far), so the result stays within ``tolerance`` of the
    original on the judged samples.
    """
    _check_compressible(model)  # refused before the whole search, as compress() refuses one layer
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
    return model.get_submodule(group.up or group.consumer).out_features
