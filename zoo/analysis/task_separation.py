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
data, not K. The model is seen only through the :class:`~zoo.models.Analysable` contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zoo.errors import ZooError
from zoo.models.contract import Analysable, select_probes

ORTHOGONAL = 0.05  # |cos| at or below this counts as orthogonal ("within ±5%")


@dataclass
class LayerRoles:
    """How the neurons of one layer (or one ColumNet column) divide their influence among the outputs."""

    units: int
    mono: int  # one output holds at least ``threshold`` of the neuron's attribution
    shared: int
    dead: int
    mono_per_output: list[int]  # mono-functional neurons serving each output

    @property
    def mono_fraction(self) -> float:
        return self.mono / max(self.units, 1)

    @property
    def shared_fraction(self) -> float:
        return self.shared / max(self.units, 1)

    @property
    def dead_fraction(self) -> float:
        return self.dead / max(self.units, 1)

    def __add__(self, other: LayerRoles) -> LayerRoles:
        counts = zip(self.mono_per_output, other.mono_per_output)
        return LayerRoles(
            self.units + other.units,
            self.mono + other.mono,
            self.shared + other.shared,
            self.dead + other.dead,
            [a + b for a, b in counts],
        )


@dataclass
class TaskSeparationResult:
    """Result of :func:`task_separation`; every matrix is indexed by output (task) number."""

    output_names: list[str]
    interference: torch.Tensor  # (K, K) cosine of task gradients, all parameters
    interference_per_layer: dict[str, torch.Tensor]  # parameter group -> (K, K)
    attribution: dict[str, torch.Tensor]  # hidden layer -> (H, K) mean |a · ∂y/∂a|
    roles: dict[str, LayerRoles]  # per hidden layer
    column_roles: dict[str, LayerRoles]  # per ColumNet column (layers summed); empty for other models
    orthogonality: torch.Tensor  # (K, K) cosine of attribution columns over all hidden neurons
    orthogonality_per_layer: dict[str, torch.Tensor]

    @property
    def mean_interference(self) -> float:
        """Mean off-diagonal cosine of the task gradients (0 with a single output)."""
        return _upper_pairs(self.interference).mean().item() if len(self.output_names) > 1 else 0.0

    @property
    def conflict_fraction(self) -> float:
        """Share of task pairs whose gradients point apart (negative cosine)."""
        return (_upper_pairs(self.interference) < 0).float().mean().item() if len(self.output_names) > 1 else 0.0

    @property
    def orthogonal_fraction(self) -> float:
        """Share of output pairs with |cosine of attribution| ≤ ``ORTHOGONAL``."""
        if len(self.output_names) < 2:
            return 1.0
        return (_upper_pairs(self.orthogonality).abs() <= ORTHOGONAL).float().mean().item()

    @property
    def attribution_share(self) -> dict[str, torch.Tensor]:
        """Each neuron's attribution as a distribution over the outputs: where its influence goes."""
        return {layer: _rows_to_distribution(matrix) for layer, matrix in self.attribution.items()}

    def summary(self) -> dict[str, float]:
        """The scalar numbers, flat: for TensorBoard scalars and the rows of a study."""
        numbers = {
            "mean_interference": self.mean_interference,
            "conflict_fraction": self.conflict_fraction,
            "orthogonal_fraction": self.orthogonal_fraction,
        }
        for group, roles in {**self.roles, **self.column_roles}.items():
            for role in ("mono", "shared", "dead"):
                numbers[f"{group}/{role}_fraction"] = getattr(roles, f"{role}_fraction")
        return numbers


def task_separation(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    threshold: float = 0.9,
    dead_tolerance: float = 1e-6,
    chunk_size: int = 1024,
) -> TaskSeparationResult:
    """Run all four views on ``(inputs, targets)``.

    Args:
        model: any :class:`~zoo.models.Analysable` (every ``ZooModule``).
        layers: hidden layers (probe names) to attribute; default all.
        threshold: share of a neuron's attribution one output must hold for it to be mono-functional.
        dead_tolerance: a neuron whose total attribution is at most this fraction of its
            layer's largest is dead.
        chunk_size: samples per batched backward pass (memory: K × chunk × widest layer).
    """
    if not 0 < threshold <= 1:
        raise ZooError(f"threshold must lie in (0, 1], got {threshold}")
    if len(inputs) == 0:
        raise ZooError("task separation needs at least one sample; got none")
    probes = select_probes(model, layers)
    names = list(output_names) if output_names is not None else [str(k) for k in range(model.num_outputs)]
    with model.analysis_mode(), torch.inference_mode(False), torch.enable_grad():
        gradients, attribution = _gradients_and_attribution(model, inputs, targets, probes, chunk_size)
    overall, per_group = interference(gradients)
    ortho, ortho_per_layer = orthogonality(attribution)
    roles = neuron_roles(attribution, threshold, dead_tolerance)
    columns: dict[str, LayerRoles] = {}
    for layer, counts in roles.items():
        column = model.probes[layer].column
        if column is not None:
            columns[column] = columns[column] + counts if column in columns else counts
    return TaskSeparationResult(
        output_names=names,
        interference=overall,
        interference_per_layer=per_group,
        attribution=attribution,
        roles=roles,
        column_roles=columns,
        orthogonality=ortho,
        orthogonality_per_layer=ortho_per_layer,
    )


def task_losses(
    outputs: torch.Tensor, targets: torch.Tensor, task: str, class_counts: torch.Tensor | None, total: int
) -> torch.Tensor:
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


def neuron_roles(
    attribution: dict[str, torch.Tensor], threshold: float = 0.9, dead_tolerance: float = 1e-6
) -> dict[str, LayerRoles]:
    """Mono-functional, shared and dead neurons of each layer, from its ``(H, K)`` attribution."""
    roles = {}
    for layer, matrix in attribution.items():
        total = matrix.sum(1)
        if total.max() > 0:
            dead = total <= dead_tolerance * total.max()
        else:
            dead = torch.ones_like(total, dtype=torch.bool)
        share = _rows_to_distribution(matrix)
        mono = ~dead & (share.max(1).values >= threshold)
        served = torch.bincount(share.argmax(1)[mono], minlength=matrix.shape[1])
        roles[layer] = LayerRoles(
            len(total), int(mono.sum()), int((~dead & ~mono).sum()), int(dead.sum()), served.tolist()
        )
    return roles


def orthogonality(attribution: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cosine similarity between outputs' attribution columns: over all hidden neurons, and per layer."""
    per_layer = {layer: _cosine_rows(matrix.t()) for layer, matrix in attribution.items()}
    overall = _cosine_rows(torch.cat(list(attribution.values()), dim=0).t())
    return overall, per_layer


def _gradients_and_attribution(
    model: Analysable, inputs: torch.Tensor, targets: torch.Tensor, probes: list[str], chunk_size: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
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
        chosen = {name: hidden[name] for name in probes}
        # ∂y_k/∂a for every output k at once; samples are independent in analysis mode
        one_hot = eye[:, None].expand(-1, len(x), -1)
        grads_hidden = torch.autograd.grad(
            outputs, list(chosen.values()), one_hot, is_grads_batched=True, retain_graph=True
        )
        for (name, activations), grad in zip(chosen.items(), grads_hidden):
            contribution = (activations.detach() * grad).abs().sum(1).t()  # (H, K)
            attribution[name] = attribution.get(name, 0) + contribution
        losses = task_losses(outputs, y, model.task, counts, len(inputs)).sum(0)
        if model.task == "classification":  # the chunk holds one class: it adds to one task's gradient
            task = int(y[0])
            for name, grad in zip(params, torch.autograd.grad(losses[task], list(params.values()))):
                gradients[name][task] += grad
        else:  # every sample adds to every output's loss: one backward batched over the K tasks
            for name, grad in zip(
                params, torch.autograd.grad(losses, list(params.values()), eye, is_grads_batched=True)
            ):
                gradients[name] += grad
    return gradients, {name: total / len(inputs) for name, total in attribution.items()}


def _chunks(targets: torch.Tensor, task: str, num_outputs: int, chunk_size: int) -> list[torch.Tensor]:
    """Index chunks of at most ``chunk_size`` samples; for classification, each of one class only."""
    if task != "classification":
        return list(torch.arange(len(targets), device=targets.device).split(chunk_size))
    order = torch.argsort(targets, stable=True)
    per_class = order.split(torch.bincount(targets, minlength=num_outputs).tolist())
    return [chunk for members in per_class for chunk in members.split(chunk_size)]


def _cosine_rows(matrix: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between rows; a zero row is orthogonal to everything (cosine 0)."""
    unit = F.normalize(matrix.double(), dim=1)
    return (unit @ unit.t()).float()


def _rows_to_distribution(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.sum(1, keepdim=True).clamp_min(torch.finfo(matrix.dtype).tiny)


def _upper_pairs(matrix: torch.Tensor) -> torch.Tensor:
    rows, cols = torch.triu_indices(len(matrix), len(matrix), offset=1, device=matrix.device)
    return matrix[rows, cols]
