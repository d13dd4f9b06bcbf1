"""Task separation: does a network compute its outputs with separate or with shared parts?

A "task" is one output: a class (its loss on the samples of that class) or a
regression target (the loss of that output). Four views, defined in
docs/task_separation.md:

1. interference: cosine similarity of the tasks' loss gradients w.r.t. the parameters;
2. attribution: mean |a_h · ∂y_k/∂a_h| of every hidden neuron h for every output k;
3. roles: mono-functional, shared or dead neurons, from the attribution shares;
4. orthogonality: cosine similarity of the outputs' attribution columns.

Everything is computed on chunks of samples on the model's device, with
batched autograd (``is_grads_batched``: one backward pass batched over the K
outputs) where every sample feeds every output. For classification, chunks
hold one class each, so a chunk's loss gradient belongs to one task and one
ordinary backward suffices: the task gradients cost one backward over the
data, not K. The model only needs ``forward_with_hidden`` and ``analysis_mode``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo.errors import ZooError

ORTHOGONAL = 0.05  # |cos| at or below this counts as orthogonal ("within ±5%")


@dataclass
class TaskSeparation:
    """Result of :func:`task_separation`; every matrix is indexed by output (task) number."""

    output_names: list[str]
    interference: torch.Tensor  # (K, K) cosine of task gradients, all parameters
    interference_per_layer: dict[str, torch.Tensor]  # parameter group -> (K, K)
    mean_interference: float  # mean off-diagonal cosine
    conflict_fraction: float  # share of task pairs with negative cosine
    attribution: dict[str, torch.Tensor]  # hidden layer -> (H, K) mean |a · ∂y/∂a|
    attribution_share: dict[str, torch.Tensor]  # rows normalized to a distribution over outputs
    roles: dict[str, dict]  # hidden layer, and column for layers named "<column>/<layer>" -> counts
    orthogonality: torch.Tensor  # (K, K) cosine of attribution columns over all hidden neurons
    orthogonality_per_layer: dict[str, torch.Tensor]
    orthogonal_fraction: float  # share of output pairs with |cos| <= ORTHOGONAL


def task_separation(
    model,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    threshold: float = 0.9,
    dead_tolerance: float = 1e-6,
    chunk_size: int = 1024,
) -> TaskSeparation:
    """Run all four views on ``(inputs, targets)``.

    Args:
        model: a ``ZooModule`` (anything with ``forward_with_hidden``, ``analysis_mode``,
            ``task`` and ``num_outputs``).
        layers: hidden layers to attribute (default: all).
        threshold: share of a neuron's attribution one output must hold for it to be mono-functional.
        dead_tolerance: a neuron whose total attribution is at most this fraction of its
            layer's largest is dead.
        chunk_size: samples per batched backward pass (memory: K × chunk × widest layer).
    """
    if not 0 < threshold <= 1:
        raise ZooError(f"threshold must lie in (0, 1], got {threshold}")
    if len(inputs) == 0:
        raise ZooError("task separation needs at least one sample; got none")
    num_outputs = model.num_outputs
    names = list(output_names) if output_names is not None else [str(k) for k in range(num_outputs)]
    with model.analysis_mode(), torch.inference_mode(False), torch.enable_grad():
        gradients, attribution = _gradients_and_attribution(model, inputs, targets, layers, chunk_size)
    overall, per_group = interference(gradients)
    shares = {layer: _rows_to_distribution(matrix) for layer, matrix in attribution.items()}
    ortho, ortho_per_layer = orthogonality(attribution)
    return TaskSeparation(
        output_names=names,
        interference=overall,
        interference_per_layer=per_group,
        mean_interference=_off_diagonal(overall).mean().item() if num_outputs > 1 else 0.0,
        conflict_fraction=(_upper_pairs(overall) < 0).float().mean().item() if num_outputs > 1 else 0.0,
        attribution=attribution,
        attribution_share=shares,
        roles=neuron_roles(attribution, threshold, dead_tolerance),
        orthogonality=ortho,
        orthogonality_per_layer=ortho_per_layer,
        orthogonal_fraction=(_upper_pairs(ortho).abs() <= ORTHOGONAL).float().mean().item() if num_outputs > 1 else 1.0,
    )


def task_losses(outputs: torch.Tensor, targets: torch.Tensor, task: str, class_counts: torch.Tensor | None, total: int) -> torch.Tensor:
    """``(n, K)``: each sample's share of each task's loss, so that a column sums to that task's loss.

    Classification: L_k is the mean cross-entropy over the samples of class k.
    Regression: L_k is the mean squared error of output k.
    """
    if task == "classification":
        per_sample = F.cross_entropy(outputs, targets, reduction="none")
        membership = F.one_hot(targets, outputs.shape[1]).to(outputs.dtype)
        return per_sample[:, None] * membership / class_counts.clamp_min(1)
    return (outputs - targets).square() / total


def interference(gradients: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cosine similarity of the task gradients, over all parameters and per parameter group.

    ``gradients`` maps parameter names to ``(K, *shape)`` task gradients; a group is the
    module owning the parameters (``blocks.0.0.weight`` and ``.bias`` → ``blocks.0.0``).
    """
    groups: dict[str, list[torch.Tensor]] = {}
    for name, grad in gradients.items():
        groups.setdefault(name.rsplit(".", 1)[0], []).append(grad.flatten(1))
    per_group = {group: _cosine_rows(torch.cat(parts, dim=1)) for group, parts in groups.items()}
    overall = _cosine_rows(torch.cat([grad.flatten(1) for grad in gradients.values()], dim=1))
    return overall, per_group


def neuron_roles(attribution: dict[str, torch.Tensor], threshold: float = 0.9, dead_tolerance: float = 1e-6) -> dict[str, dict]:
    """Count mono-functional, shared and dead neurons per layer, and per column (``<column>/<layer>`` names)."""
    per_layer = {}
    for layer, matrix in attribution.items():
        total = matrix.sum(1)
        dead = total <= dead_tolerance * total.max() if total.max() > 0 else torch.ones_like(total, dtype=torch.bool)
        share = _rows_to_distribution(matrix)
        mono = ~dead & (share.max(1).values >= threshold)
        served = share.argmax(1)
        per_layer[layer] = {
            "units": len(total),
            "mono": int(mono.sum()),
            "shared": int((~dead & ~mono).sum()),
            "dead": int(dead.sum()),
            "mono_per_output": torch.bincount(served[mono], minlength=matrix.shape[1]).tolist(),
        }
    roles = {layer: _with_fractions(counts) for layer, counts in per_layer.items()}
    columns: dict[str, dict] = {}
    for layer, counts in per_layer.items():
        if "/" in layer:
            column = columns.setdefault(layer.split("/", 1)[0], {"units": 0, "mono": 0, "shared": 0, "dead": 0})
            for key in column:
                column[key] += counts[key]
    roles.update({column: _with_fractions(counts) for column, counts in columns.items()})
    return roles


def orthogonality(attribution: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cosine similarity between outputs' attribution columns: over all hidden neurons, and per layer."""
    per_layer = {layer: _cosine_rows(matrix.t()) for layer, matrix in attribution.items()}
    overall = _cosine_rows(torch.cat(list(attribution.values()), dim=0).t())
    return overall, per_layer


def _gradients_and_attribution(model, inputs, targets, layers, chunk_size):
    device = next(model.parameters()).device
    # tensors made under inference mode cannot enter autograd; a copy made here (outside it) can
    inputs, targets = (t.to(device).clone() if t.is_inference() else t.to(device) for t in (inputs, targets))
    num_outputs = model.num_outputs
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    counts = torch.bincount(targets, minlength=num_outputs).float() if model.task == "classification" else None
    eye = torch.eye(num_outputs, device=device)
    gradients = {name: torch.zeros(num_outputs, *p.shape, device=device) for name, p in params.items()}
    attribution: dict[str, torch.Tensor] = {}
    for index in _chunks(targets, model.task, num_outputs, chunk_size):
        x, y = inputs[index], targets[index]
        outputs, hidden = model.forward_with_hidden(x)
        chosen = _select_layers(hidden, layers)
        # ∂y_k/∂a for every output k at once; samples are independent in analysis mode
        grads_hidden = torch.autograd.grad(outputs, list(chosen.values()), eye[:, None].expand(-1, len(x), -1), is_grads_batched=True, retain_graph=True)
        for (name, activations), grad in zip(chosen.items(), grads_hidden):
            contribution = (activations.detach() * grad).abs().sum(1).t()  # (H, K)
            attribution[name] = attribution.get(name, 0) + contribution
        losses = task_losses(outputs, y, model.task, counts, len(inputs)).sum(0)
        if model.task == "classification":  # the chunk holds one class: it adds to one task's gradient
            task = int(y[0])
            for name, grad in zip(params, torch.autograd.grad(losses[task], list(params.values()))):
                gradients[name][task] += grad
        else:  # every sample adds to every output's loss: one backward batched over the K tasks
            for name, grad in zip(params, torch.autograd.grad(losses, list(params.values()), eye, is_grads_batched=True)):
                gradients[name] += grad
    return gradients, {name: total / len(inputs) for name, total in attribution.items()}


def _chunks(targets: torch.Tensor, task: str, num_outputs: int, chunk_size: int) -> list[torch.Tensor]:
    """Index chunks of at most ``chunk_size`` samples; for classification, each of one class only."""
    if task != "classification":
        return list(torch.arange(len(targets), device=targets.device).split(chunk_size))
    order = torch.argsort(targets, stable=True)
    per_class = order.split(torch.bincount(targets, minlength=num_outputs).tolist())
    return [chunk for members in per_class for chunk in members.split(chunk_size)]


def _select_layers(hidden: dict[str, torch.Tensor], layers: Sequence[str] | None) -> dict[str, torch.Tensor]:
    if layers is None:
        return hidden
    unknown = [layer for layer in layers if layer not in hidden]
    if unknown:
        raise ZooError(f"unknown layer {unknown[0]!r}; this model's hidden layers are: {', '.join(hidden)}")
    return {layer: hidden[layer] for layer in layers}


def _cosine_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between rows; a zero row is orthogonal to everything (cosine 0)."""
    unit = F.normalize(matrix.double(), dim=1)
    return (unit @ unit.t()).float()


def _rows_to_distribution(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.sum(1, keepdim=True).clamp_min(torch.finfo(matrix.dtype).tiny)


def _off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    return matrix[~torch.eye(len(matrix), dtype=torch.bool, device=matrix.device)]


def _upper_pairs(matrix: torch.Tensor) -> torch.Tensor:
    rows, cols = torch.triu_indices(len(matrix), len(matrix), offset=1, device=matrix.device)
    return matrix[rows, cols]


def _with_fractions(counts: dict) -> dict:
    units = max(counts["units"], 1)
    return {**counts, **{f"{role}_fraction": counts[role] / units for role in ("mono", "shared", "dead")}}
