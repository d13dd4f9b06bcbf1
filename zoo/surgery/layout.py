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


def unit_groups(model: ZooModule) -> list[UnitGroup]:
    """The probed layers of an FCNet, SparseNet or ColumNet, input side first (column by column)."""
    if isinstance(model, ColumNet):
        chains = [(f"columns.{index}", column) for index, column in enumerate(model.columns)]
    elif isinstance(model, (FCNet, SparseNet)):
        chains = [("blocks", model.blocks)]
    else:
        raise ZooError(f"surgery works on FCNet, SparseNet and ColumNet; this is a {type(model).__name__}")
    groups, offset = [], 0
    for prefix, blocks in chains:
        for index, block in enumerate(blocks):
            last = index == len(blocks) - 1
            consumer = "head" if last else f"{prefix}.{index + 1}.0"
            norm = f"{prefix}.{index}.1" if isinstance(block[1], nn.BatchNorm1d) else None
            producer = _side(model, f"{prefix}.{index}.0", output=True)
            reader = _side(model, consumer, output=False)
            groups.append(UnitGroup(block[-1].name, producer, norm, reader, offset if last else 0))
            if last:
                offset += block[-1].units
    return groups


def _side(model: nn.Module, path: str, output: bool) -> str:
    """A low-rank layer (``Sequential(down, up)``) is read by its first factor and written by its second."""
    module = model.get_submodule(path)
    if isinstance(module, nn.Sequential):
        return f"{path}.1" if output else f"{path}.0"
    return path


def dense_weight(layer: nn.Module) -> torch.Tensor:
    """A linear map's ``(out, in)`` weight, zeros where a sparse layer has no connection."""
    return layer.dense_weight().detach() if isinstance(layer, SparseLinear) else layer.weight.detach()


def bias_path(model: nn.Module, consumer: str) -> tuple[str, torch.Tensor | None]:
    """Where a constant input of ``consumer`` folds to: its own bias, or (low-rank) the second factor's.

    Returns that layer's path and the matrix that carries the consumer's output there (``None``: itself).
    """
    layer = model.get_submodule(consumer)
    if layer.bias is not None:
        return consumer, None
    up = consumer.rsplit(".", 1)[0] + ".1"
    return up, model.get_submodule(up).weight.detach()


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
