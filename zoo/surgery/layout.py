"""Where an architecture's hidden units live: which linear map makes them, which reads them.

Surgery edits weights around a probe: the rows of the layer that computes it (and its batch
norm), the columns of the layer that reads it. This module finds those, for the MLP-shaped
architectures (FCNet, SparseNet, ColumNet), by module path, so that the same path names the
matching layer in the rebuilt model.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from torch import nn
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import multiclass_accuracy

from zoo.errors import ZooError
from zoo.models import ColumNet, FCNet, SparseLinear, SparseNet, ZooModule


@dataclass(frozen=True)
class UnitGroup:
    """One probed hidden layer and the layers around it, as module paths."""

    probe: str
    producer: str  # the linear map whose outputs (through norm and activation) the probe sees
    norm: str | None  # its BatchNorm1d, if any
    consumer: str  # the linear map that reads the probe's units (the first factor of a low-rank one)
    offset: int  # where those units start among the consumer's inputs (ColumNet's head reads all columns)
    up: str | None = None  # a low-rank consumer's second factor, which reads its k outputs
    up_offset: int = 0  # where those k outputs start among the second factor's inputs (ColumNet's head)


def unit_groups(model: ZooModule) -> list[UnitGroup]:
    """The probed layers of an FCNet, SparseNet or ColumNet, input side first (column by column).

    A compressed ColumNet column's last layer is read by ``project.<i>`` (column i from 0), whose k outputs
    the head reads among the other columns' inputs.
    """
    if isinstance(model, ColumNet):
        chains = [(f"columns.{index}", column) for index, column in enumerate(model.columns)]
        projections = [isinstance(project, nn.Linear) for project in model.project]
    elif isinstance(model, (FCNet, SparseNet)):
        chains, projections = [("blocks", model.blocks)], [False]
    else:
        raise ZooError(f"surgery works on FCNet, SparseNet and ColumNet; this is a {type(model).__name__}")
    groups, offset = [], 0  # offset: where the next column's inputs start among the head's
    for (prefix, blocks), projected in zip(chains, projections):
        for index, block in enumerate(blocks):
            norm = f"{prefix}.{index}.1" if isinstance(block[1], nn.BatchNorm1d) else None
            producer = _producer(model, f"{prefix}.{index}.0")
            if index < len(blocks) - 1:
                place = {"consumer": f"{prefix}.{index + 1}.0", "offset": 0}
            elif projected:
                place = {"consumer": f"project.{prefix.rsplit('.', 1)[1]}", "offset": 0, "up": "head"}
                place["up_offset"] = offset
                offset += model.get_submodule(place["consumer"]).out_features
            else:
                place = {"consumer": "head", "offset": offset}
                offset += block[-1].units
            if isinstance(model.get_submodule(place["consumer"]), nn.Sequential):  # a low-rank map: down, up
                place |= {"consumer": f"{place['consumer']}.0", "up": f"{place['consumer']}.1"}
            groups.append(UnitGroup(block[-1].name, producer, norm, **place))
    return groups


def _producer(model: nn.Module, path: str) -> str:
    """A low-rank layer (``Sequential(down, up)``) is written by its second factor."""
    return f"{path}.1" if isinstance(model.get_submodule(path), nn.Sequential) else path


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """A linear map's ``(out, in)`` weight, zeros where a sparse layer has no connection."""
    return layer.dense_weight().detach() if isinstance(layer, SparseLinear) else layer.weight.detach()


def bias_path(model: nn.Module, group: UnitGroup) -> tuple[str, torch.Tensor | None]:
    """Where a constant input of the group's consumer folds to: its own bias, or (low-rank) the second factor's.

    Returns that layer's path and the matrix that carries the consumer's output there (``None``: itself).
    """
    if group.up is None:
        return group.consumer, None
    k = model.get_submodule(group.consumer).out_features
    return group.up, model.get_submodule(group.up).weight.detach()[:, group.up_offset : group.up_offset + k]


def init_arguments(cls: type, hparams: dict) -> dict:
    """The hyper-parameters ``cls`` takes (Lightning's CLI adds its own bookkeeping, ``_instantiator``, to them)."""
    accepted = inspect.signature(cls.__init__).parameters
    return {key: value for key, value in hparams.items() if key in accepted}


def rebuild(model: ZooModule, **changes) -> ZooModule:
    """A new model of the same architecture, its hyper-parameters but ``changes``, on the same device."""
    built = type(model)(**init_arguments(type(model), {**dict(model.hparams), **changes}))
    return built.to(next(model.parameters()).device)


def copy_matching(source: nn.Module, target: nn.Module) -> None:
    """Copy every tensor whose name and shape the two models share (the layers surgery leaves alone)."""
    state = target.state_dict()
    for key, value in source.state_dict().items():
        if key in state and state[key].shape == value.shape:
            state[key] = value
    target.load_state_dict(state)


@torch.no_grad()
def outputs_of(model: ZooModule, inputs: torch.Tensor, chunk_size: int = 4096) -> torch.Tensor:
    """The model's outputs in analysis mode (eval, dense-equivalent sparse layers), in chunks."""
    with model.analysis_mode():
        return torch.cat([model(chunk) for chunk in inputs.split(chunk_size)])


def metric(model: ZooModule, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[str, float]:
    """The task's metric as the compression analysis scores it: accuracy, or R² averaged over outputs."""
    if model.task == "classification":
        return "accuracy", multiclass_accuracy(outputs, targets, model.num_outputs, average="micro").item()
    return "r2", r2_score(outputs, targets, multioutput="uniform_average").item()
