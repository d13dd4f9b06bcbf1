"""Remove dead units exactly: a unit constant over the judged samples passes on nothing but a bias.

A dead unit ``j`` of a layer (``zoo.analysis.units``: constant over the samples judged) adds
``W[:, j] · c_j`` to every input of the next layer, the same for every sample; folding that
into the next layer's bias and deleting the unit's row (and its column downstream) leaves the
outputs on those samples unchanged up to the constant's tiny variation. On other samples a
unit silent on the judged ones may fire: the pruned network then differs, which is why the
caller measures it on held-out data too.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from zoo.analysis.activations import collect_activations
from zoo.analysis.units import DEAD_TOLERANCE, dead_units
from zoo.models import ColumNet, SparseLinear, SparseNet, ZooModule
from zoo.surgery.layout import bias_path, dense_weight, rebuild, unit_groups


@dataclass
class PruneReport:
    """What pruning removed, per probed layer, and the parameter counts before and after."""

    removed: dict[str, list[int]]  # the dead units taken out, by index in the original layer
    constants: dict[str, torch.Tensor]  # the value each removed unit sat at, folded downstream
    widths: dict[str, tuple[int, int]]  # units before, after
    kept_dead: dict[str, int]  # a layer whose units are all dead keeps one (a layer needs a unit)
    kept_varying: dict[str, list[int]]  # dead by the definition, yet not exactly constant: kept when exact
    parameters_before: dict[str, int]
    parameters_after: dict[str, int]
    samples: int  # how many samples the units were judged on


@torch.no_grad()
def prune_dead(
    model: ZooModule,
    inputs: torch.Tensor,
    *,
    tolerance: float = DEAD_TOLERANCE,
    exact: bool = True,
    chunk_size: int = 4096,
) -> tuple[ZooModule, PruneReport]:
    """The model without the units that are dead on ``inputs``, their constants folded downstream.

    Dead is ``zoo.analysis.units``' definition (variance at most ``tolerance`` times the layer's
    largest). With ``exact``, only those whose activation is the same number on every sample go:
    the pruned network's outputs then equal the original's there. Without it, units that fire
    rarely and weakly go too, folded at their mean activation, which changes outputs slightly.
    """
    groups = unit_groups(model)
    with model.analysis_mode():
        activations = collect_activations(model, inputs, [group.probe for group in groups], chunk_size)
    rows: dict[str, torch.Tensor] = {}  # producer path -> kept output units
    columns: dict[str, torch.Tensor] = {}  # consumer path -> kept inputs (boolean)
    folded: dict[str, torch.Tensor] = {}  # bias path -> what the removed constants add to it
    report = PruneReport({}, {}, {}, {}, {}, model.parameter_counts(), {}, len(inputs))
    for group in groups:
        values = activations[group.probe]
        dead = dead_units(values, tolerance).all
        if exact:  # a unit that fires, however rarely and weakly, is not a bias: folding it would change outputs
            constant = (values.amax(0) == values.amin(0)).tolist()
            report.kept_varying[group.probe] = [unit for unit in dead if not constant[unit]]
            dead = [unit for unit in dead if constant[unit]]
        alive = sorted(set(range(values.shape[1])) - set(dead))
        if not alive:  # keep one constant unit: every layer needs a width, and it carries the constant itself
            alive, dead = dead[:1], dead[1:]
            report.kept_dead[group.probe] = 1
        removed = torch.tensor(dead, dtype=torch.long, device=values.device)
        rows[group.producer] = torch.tensor(alive, dtype=torch.long, device=values.device)
        consumer = model.get_submodule(group.consumer)
        keep = columns.setdefault(group.consumer, torch.ones(consumer.in_features, dtype=torch.bool))
        keep[group.offset + removed.cpu()] = False
        constants = values[:, removed].mean(0)
        contribution = dense_weight(consumer)[:, group.offset + removed] @ constants
        target, carry = bias_path(model, group)
        if carry is not None:
            contribution = carry @ contribution
        folded[target] = folded.get(target, 0) + contribution
        report.removed[group.probe], report.constants[group.probe] = dead, constants
        report.widths[group.probe] = (values.shape[1], len(alive))
    pruned = rebuild(model, **_shape(model, groups, rows, columns))
    for path in rows.keys() | columns.keys() | folded.keys():
        _transplant(model, pruned, path, rows.get(path), columns.get(path), folded.get(path))
    for group in groups:
        if group.norm is not None:
            _slice_norm(model.get_submodule(group.norm), pruned.get_submodule(group.norm), rows[group.producer])
    report.parameters_after = pruned.parameter_counts()
    return pruned, report


def _shape(
    model: ZooModule, groups: list, rows: dict[str, torch.Tensor], columns: dict[str, torch.Tensor]
) -> dict[str, object]:
    """The hyper-parameters that build the pruned shape."""
    widths = [len(rows[group.producer]) for group in groups]
    if isinstance(model, ColumNet):
        specs, start = [], 0
        for name, column in zip(model.column_names, model.columns):
            specs.append({"hidden": widths[start : start + len(column)], "activation": name.split("_", 1)[1]})
            start += len(column)
        return {"columns": specs, "hidden": None, "activations": None}
    if isinstance(model, SparseNet):
        counts = []
        for layer in model.sparse_layers:
            path = next(name for name, module in model.named_modules() if module is layer)
            mask = layer.connectivity()
            if path in rows:
                mask = mask[rows[path].to(mask.device)]
            if path in columns:
                mask = mask[:, columns[path].to(mask.device)]
            counts.append(int(mask.sum()))
        return {"hidden": widths, "connections": counts}
    return {"hidden": widths}


def _transplant(
    source: ZooModule,
    target: ZooModule,
    path: str,
    rows: torch.Tensor | None,
    columns: torch.Tensor | None,
    folded: torch.Tensor | None,
) -> None:
    """Copy one linear map into the pruned model: its kept rows and columns, its bias plus what was folded."""
    old, new = source.get_submodule(path), target.get_submodule(path)
    weight = dense_weight(old)
    bias = old.bias.detach() + folded if folded is not None else old.bias
    if rows is not None:
        weight, bias = weight[rows], bias[rows] if bias is not None else None
    if columns is not None:
        weight = weight[:, columns.to(weight.device)]
    if isinstance(old, SparseLinear):
        mask = old.connectivity()
        mask = mask[rows] if rows is not None else mask
        mask = mask[:, columns.to(mask.device)] if columns is not None else mask
        new.assign(weight, mask)
    else:
        new.weight.copy_(weight)
    if bias is not None:
        new.bias.copy_(bias)


def _slice_norm(old: nn.BatchNorm1d, new: nn.BatchNorm1d, keep: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(new, name).copy_(getattr(old, name)[keep])
    new.num_batches_tracked.copy_(old.num_batches_tracked)


@torch.no_grad()
def varied_elsewhere(
    model: ZooModule, report: PruneReport, inputs: torch.Tensor, *, atol: float = 1e-6, chunk_size: int = 4096
) -> dict[str, tuple[int, int]]:
    """Per layer, how many removed units leave their folded constant on ``inputs``, and on how many samples.

    A unit silent on the judged samples may fire on others; there the pruned network differs
    from the original. ``model`` is the original.
    """
    layers = [layer for layer, units in report.removed.items() if units]
    with model.analysis_mode():
        values = collect_activations(model, inputs, layers, chunk_size) if layers else {}
    varied = {}
    for layer in layers:
        removed = values[layer][:, report.removed[layer]]
        moved = (removed - report.constants[layer].to(removed.device)).abs() > atol
        varied[layer] = (int(moved.any(0).sum()), int(moved.any(1).sum()))
    return varied
