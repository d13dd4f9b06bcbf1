"""Task separation: does a network compute its outputs with separate or with shared parts?

A "task" is one output: a class (its loss on the samples of that class) or a
regression target (the loss of that output). Four views, defined in
docs/task_separation.md:

1. interference: cosine similarity of the tasks' loss gradients w.r.t. the parameters;
2. attribution: mean |a_h · ∂y_k/∂a_h| (magnitude) and mean a_h · ∂y_k/∂a_h (signed)
   of every hidden neuron h for every output k;
3. roles: dead neurons (by their activations, as the activation analysis defines them),
   and among the live ones mono-functional or shared, from the attribution shares;
4. orthogonality: cosine similarity of the outputs' attribution columns, under the
   magnitude view (in [0, 1]) and the signed view (in [-1, 1]).

Everything is computed on chunks of samples on the model's device, with
batched autograd (``is_grads_batched``: one backward pass batched over the K
outputs) where every sample feeds every output. For classification, chunks
hold one class each, so a chunk's loss gradient belongs to one task and one
ordinary backward suffices: the task gradients cost one backward over the
data, not K. The model is seen only through the :class:`~zoo.models.Analysable` contract.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from zoo.analysis.units import DEAD_TOLERANCE, dead_mask
from zoo.errors import ZooError
from zoo.models.contract import Analysable, output_names_for, require_one_model, select_probes

ORTHOGONAL = 0.05  # |cos| at or below this counts as orthogonal ("within ±5%")


@dataclass
class LayerRoles:
    """How the neurons of one layer (or one ColumNet column) divide their influence among the outputs.

    A live neuron is mono-functional when one output holds at least ``threshold`` of its
    attribution, shared otherwise. ``largest_share`` keeps every live neuron's largest
    share, so the distribution behind the counts is not lost to the threshold.
    """

    units: int
    dead: int
    mono_per_output: list[int]  # mono-functional neurons serving each output
    largest_share: torch.Tensor  # (live units,) max_k P_hk of each live neuron

    @property
    def mono(self) -> int:
        return sum(self.mono_per_output)

    @property
    def shared(self) -> int:
        return self.units - self.dead - self.mono

    @property
    def mono_fraction(self) -> float:
        return self.mono / max(self.units, 1)

    @property
    def shared_fraction(self) -> float:
        return self.shared / max(self.units, 1)

    @property
    def dead_fraction(self) -> float:
        return self.dead / max(self.units, 1)

    @property
    def specialization(self) -> float:
        """Mean over live neurons of (K·max share − 1)/(K − 1): 0 if every neuron serves all outputs
        alike, 1 if each serves a single one (nan without live neurons or with one output)."""
        outputs = len(self.mono_per_output)
        if outputs < 2 or len(self.largest_share) == 0:
            return float("nan")
        return ((outputs * self.largest_share - 1) / (outputs - 1)).mean().item()

    def __repr__(self) -> str:
        """The counts, not every neuron's share (a thousand numbers in a console)."""
        return (
            f"LayerRoles(units={self.units}, dead={self.dead}, mono={self.mono} {self.mono_per_output}, "
            f"shared={self.shared}, specialization={self.specialization:.3f})"
        )

    def __add__(self, other: LayerRoles) -> LayerRoles:
        return LayerRoles(
            self.units + other.units,
            self.dead + other.dead,
            [a + b for a, b in zip(self.mono_per_output, other.mono_per_output)],
            torch.cat([self.largest_share, other.largest_share]),
        )


@dataclass
class TaskSeparationResult:
    """Result of :func:`task_separation`; every matrix is indexed by output (task) number.

    Classes absent from the analysed data have no loss gradient: their rows and columns
    of ``interference`` are NaN (undefined) and they are listed in ``absent_outputs``.
    """

    output_names: list[str]
    samples: int  # how many samples were analysed
    data: str  # what they were, e.g. "train" (for the reader; "" when not said)
    absent_outputs: list[str]
    interference: torch.Tensor  # (K, K) cosine of task gradients, all parameters
    interference_per_layer: dict[str, torch.Tensor]  # parameter group -> (K, K)
    attribution: dict[str, torch.Tensor]  # hidden layer -> (H, K) mean |a · ∂y/∂a|
    signed_attribution: dict[str, torch.Tensor]  # hidden layer -> (H, K) mean a · ∂y/∂a
    roles: dict[str, LayerRoles]  # per hidden layer
    column_roles: dict[str, LayerRoles]  # per ColumNet column (layers summed); empty for other models
    orthogonality: torch.Tensor  # (K, K) cosine of magnitude attribution columns, all hidden neurons
    signed_orthogonality: torch.Tensor  # (K, K) cosine of signed attribution columns
    orthogonality_per_layer: dict[str, torch.Tensor] = field(default_factory=dict)
    signed_orthogonality_per_layer: dict[str, torch.Tensor] = field(default_factory=dict)
    threshold: float = 0.9  # the attribution share that made a neuron mono-functional
    dead: dict[str, torch.Tensor] = field(default_factory=dict)  # hidden layer -> (H,) bool, the dead neurons

    @property
    def mean_interference(self) -> float:
        """Mean cosine of the task gradients over pairs of present tasks (nan with fewer than two)."""
        return _upper_pairs(self.interference).nanmean().item()

    @property
    def conflict_fraction(self) -> float:
        """Share of pairs of present tasks whose gradients point apart (negative cosine)."""
        pairs = _upper_pairs(self.interference)
        pairs = pairs[~pairs.isnan()]
        return (pairs < 0).float().mean().item() if len(pairs) else float("nan")

    @property
    def orthogonal_fraction(self) -> float:
        """Share of output pairs whose magnitude cosine is ≤ ``ORTHOGONAL`` (it is never negative)."""
        return _fraction_within(self.orthogonality, ORTHOGONAL)

    @property
    def signed_orthogonal_fraction(self) -> float:
        """Share of output pairs whose signed cosine lies within ±``ORTHOGONAL``."""
        return _fraction_within(self.signed_orthogonality, ORTHOGONAL)

    @property
    def pairs(self) -> list[dict]:
        """Every output pair with its cosine under each definition, and the tasks' interference."""
        rows, cols = torch.triu_indices(len(self.output_names), len(self.output_names), offset=1).tolist()
        return [
            {
                "outputs": [self.output_names[k], self.output_names[j]],
                "orthogonality": self.orthogonality[k, j].item(),
                "signed_orthogonality": self.signed_orthogonality[k, j].item(),
                "interference": self.interference[k, j].item(),
            }
            for k, j in zip(rows, cols)
        ]

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
            "signed_orthogonal_fraction": self.signed_orthogonal_fraction,
        }
        for pair in self.pairs if len(self.output_names) <= 4 else []:  # a few outputs: every pair by name
            name = "_".join(pair["outputs"])
            numbers[f"pair/{name}/orthogonality"] = pair["orthogonality"]
            numbers[f"pair/{name}/signed_orthogonality"] = pair["signed_orthogonality"]
            numbers[f"pair/{name}/interference"] = pair["interference"]
        for group, roles in {**self.roles, **self.column_roles}.items():
            for role in ("mono", "shared", "dead"):
                numbers[f"{group}/{role}_fraction"] = getattr(roles, f"{role}_fraction")
            numbers[f"{group}/specialization"] = roles.specialization
        return numbers


def task_separation(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    *,
    layers: Sequence[str] | None = None,
    threshold: float = 0.9,
    dead_tolerance: float = DEAD_TOLERANCE,
    chunk_size: int = 1024,
    data: str = "",
) -> TaskSeparationResult:
    """Run all four views on ``(inputs, targets)``.

    Args:
        model: any :class:`~zoo.models.Analysable` (every ``ZooModule``).
        layers: hidden layers (probe names) to attribute; default all.
        threshold: share of a neuron's attribution one output must hold for it to be mono-functional.
        dead_tolerance: a neuron whose activation variance is at most this fraction of its layer's
            largest is dead (``zoo.analysis.units``, the activation analysis's definition).
        chunk_size: samples per batched backward pass (memory: K × chunk × widest layer).
        data: what the samples are (e.g. ``"train"``), recorded with the result.
    """
    if not 0 < threshold <= 1:
        raise ZooError(f"threshold must lie in (0, 1], got {threshold}")
    if len(inputs) == 0:
        raise ZooError("task separation needs at least one sample; got none")
    require_one_model(model, "task separation")
    probes = select_probes(model, layers)
    names = output_names_for(model, inputs, targets, output_names, "task separation")
    with model.analysis_mode(), torch.inference_mode(False), torch.enable_grad():
        gradients, attribution, signed, activations = _gradients_and_attribution(
            model, inputs, targets, probes, chunk_size
        )
    return separation_result(
        model,
        gradients=gradients,
        attribution=attribution,
        signed=signed,
        activations=activations,
        targets=targets,
        output_names=names,
        threshold=threshold,
        dead_tolerance=dead_tolerance,
        data=data,
    )


def separation_result(
    model: Analysable,
    *,
    gradients: dict[str, torch.Tensor],
    attribution: dict[str, torch.Tensor],
    signed: dict[str, torch.Tensor],
    activations: dict[str, torch.Tensor],
    targets: torch.Tensor,
    output_names: list[str],
    threshold: float,
    dead_tolerance: float,
    data: str,
    dead: dict[str, torch.Tensor] | None = None,
) -> TaskSeparationResult:
    """The four views of one model from its task gradients, attributions and activations on ``targets``' samples.

    ``model`` is read for its task, number of outputs and probes' columns only, so a population's
    members, computed together (:mod:`zoo.analysis.members`), come here one at a time, with their
    ``dead`` units (:func:`~zoo.analysis.units.dead_mask` per layer) judged together too.
    """
    absent: list[int] = []
    if model.task == "classification":
        absent = (torch.bincount(targets.cpu(), minlength=model.num_outputs) == 0).nonzero().flatten().tolist()
    overall, per_group = interference(gradients, absent)
    if dead is None:
        dead = {layer: dead_mask(values, dead_tolerance) for layer, values in activations.items()}
    roles = neuron_roles(attribution, dead, threshold)
    columns: dict[str, LayerRoles] = {}
    for layer, counts in roles.items():
        column = model.probes[layer].column
        if column is not None:
            columns[column] = columns[column] + counts if column in columns else counts
    magnitude, magnitude_per_layer = orthogonality(attribution)
    signed_overall, signed_per_layer = orthogonality(signed)
    return TaskSeparationResult(
        output_names=output_names,
        samples=len(targets),
        data=data,
        absent_outputs=[output_names[k] for k in absent],
        interference=overall,
        interference_per_layer=per_group,
        attribution=attribution,
        signed_attribution=signed,
        roles=roles,
        column_roles=columns,
        orthogonality=magnitude,
        signed_orthogonality=signed_overall,
        orthogonality_per_layer=magnitude_per_layer,
        signed_orthogonality_per_layer=signed_per_layer,
        threshold=threshold,
        dead=dead,
    )


def task_losses(
    outputs: torch.Tensor, targets: torch.Tensor, task: str, class_counts: torch.Tensor | None, total: int
) -> torch.Tensor:
    """``(n, K)``: each sample's share of each task's loss, so that a column sums to that task's loss.

    Classification: L_k is the mean cross-entropy over the samples of class k.
    Regression: L_k is the mean squared error of output k. Outputs ``(members, n, K)`` give
    ``(members, n, K)``, each member's own.
    """
    if task == "classification":
        flat = targets.expand(outputs.shape[:-1]).flatten()
        per_sample = F.cross_entropy(outputs.flatten(0, -2), flat, reduction="none").view(outputs.shape[:-1])
        membership = F.one_hot(targets, outputs.shape[-1]).to(outputs.dtype)
        return per_sample[..., None] * membership / class_counts.clamp_min(1)
    return (outputs - targets).square() / total


def interference(
    gradients: dict[str, torch.Tensor], absent: Sequence[int] = ()
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cosine similarity of the task gradients, over all parameters and per parameter group.

    ``gradients`` maps parameter names to ``(K, *shape)`` task gradients; a group is the
    module owning the parameters (``blocks.0.0.weight`` and ``.bias`` → ``blocks.0.0``).
    Tasks in ``absent`` (no samples, so no gradient) get NaN rows and columns.
    """
    groups: dict[str, list[torch.Tensor]] = {}
    for name, grad in gradients.items():
        groups.setdefault(name.rsplit(".", 1)[0], []).append(grad.flatten(1))
    per_group = {group: _cosine_rows(torch.cat(parts, dim=1), absent) for group, parts in groups.items()}
    overall = _cosine_rows(torch.cat([grad.flatten(1) for grad in gradients.values()], dim=1), absent)
    return overall, per_group


def neuron_roles(
    attribution: dict[str, torch.Tensor], dead: dict[str, torch.Tensor], threshold: float = 0.9
) -> dict[str, LayerRoles]:
    """Dead neurons as given, and mono-functional or shared live ones from their ``(H, K)`` attribution."""
    roles = {}
    for layer, matrix in attribution.items():
        live = ~dead[layer]
        share = _rows_to_distribution(matrix)[live]
        largest, served = share.max(1)
        mono = largest >= threshold
        per_output = torch.bincount(served[mono], minlength=matrix.shape[1])
        roles[layer] = LayerRoles(len(matrix), int((~live).sum()), per_output.tolist(), largest)
    return roles


def orthogonality(attribution: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Cosine similarity between outputs' attribution columns: over all hidden neurons, and per layer."""
    per_layer = {layer: _cosine_rows(matrix.t()) for layer, matrix in attribution.items()}
    overall = _cosine_rows(torch.cat(list(attribution.values()), dim=0).t())
    return overall, per_layer


def _on_model(model: Analysable, tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` on the model's device, real numbers in its precision (it may train in 64-true or bf16-true).

    Tensors made under inference mode cannot enter autograd; a copy made here (outside it) can.
    """
    parameter = next(model.parameters())
    moved = tensor.to(parameter.device, parameter.dtype) if tensor.is_floating_point() else tensor.to(parameter.device)
    return moved.clone() if moved.is_inference() else moved


def _gradients_and_attribution(
    model: Analysable, inputs: torch.Tensor, targets: torch.Tensor, probes: list[str], chunk_size: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Task gradients ``{param: (K, ...)}``, magnitude and signed attribution ``{layer: (H, K)}``, activations."""
    inputs, targets = (_on_model(model, tensor) for tensor in (inputs, targets))
    device, dtype = inputs.device, next(model.parameters()).dtype
    num_outputs = model.num_outputs
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    counts = torch.bincount(targets, minlength=num_outputs).float() if model.task == "classification" else None
    eye = torch.eye(num_outputs, device=device, dtype=dtype)
    gradients = {name: torch.zeros(num_outputs, *p.shape, device=device) for name, p in params.items()}
    magnitude: dict[str, torch.Tensor] = {}
    signed: dict[str, torch.Tensor] = {}
    activations: dict[str, list[torch.Tensor]] = {name: [] for name in probes}
    for index in _chunks(targets, model.task, num_outputs, chunk_size):
        x, y = inputs[index], targets[index]
        outputs, hidden = model.forward_with_hidden(x)
        chosen = {name: hidden[name] for name in probes}
        # ∂y_k/∂a for every output k at once; samples are independent in analysis mode
        one_hot = eye[:, None].expand(-1, len(x), -1)
        grads_hidden = torch.autograd.grad(
            outputs, list(chosen.values()), one_hot, is_grads_batched=True, retain_graph=True
        )
        for (name, values), grad in zip(chosen.items(), grads_hidden):
            contribution = values.detach() * grad  # (K, n, H)
            magnitude[name] = magnitude.get(name, 0) + contribution.abs().sum(1).t()
            signed[name] = signed.get(name, 0) + contribution.sum(1).t()
            activations[name].append(values.detach())
        losses = task_losses(outputs, y, model.task, counts, len(inputs)).sum(0)
        if model.task == "classification":  # the chunk holds one class: it adds to one task's gradient
            task = int(y[0])
            for name, grad in zip(params, torch.autograd.grad(losses[task], list(params.values()))):
                gradients[name][task] += grad
        else:  # every sample adds to every output's loss: one backward batched over the K tasks
            batched = torch.autograd.grad(losses, list(params.values()), eye, is_grads_batched=True)
            for name, grad in zip(params, batched):
                gradients[name] += grad
    n = len(inputs)
    return (
        gradients,
        {name: total / n for name, total in magnitude.items()},
        {name: total / n for name, total in signed.items()},
        {name: torch.cat(parts) for name, parts in activations.items()},
    )


def _chunks(targets: torch.Tensor, task: str, num_outputs: int, chunk_size: int) -> list[torch.Tensor]:
    """Index chunks of at most ``chunk_size`` samples; for classification, each of one class only."""
    if task != "classification":
        return list(torch.arange(len(targets), device=targets.device).split(chunk_size))
    order = torch.argsort(targets, stable=True)
    per_class = order.split(torch.bincount(targets, minlength=num_outputs).tolist())
    return [chunk for members in per_class for chunk in members.split(chunk_size) if len(chunk)]


def _cosine_rows(matrix: torch.Tensor, undefined: Sequence[int] = ()) -> torch.Tensor:
    """Cosine similarity between rows; a zero row is orthogonal to everything (cosine 0).

    Rows listed in ``undefined`` have no meaningful vector: their rows and columns are NaN.
    """
    unit = F.normalize(matrix.double(), dim=1)
    cosine = (unit @ unit.t()).float()
    cosine[list(undefined)] = float("nan")
    cosine[:, list(undefined)] = float("nan")
    return cosine


def _rows_to_distribution(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.sum(1, keepdim=True).clamp_min(torch.finfo(matrix.dtype).tiny)


def _upper_pairs(matrix: torch.Tensor) -> torch.Tensor:
    rows, cols = torch.triu_indices(len(matrix), len(matrix), offset=1, device=matrix.device)
    return matrix[rows, cols]


def _fraction_within(cosines: torch.Tensor, bound: float) -> float:
    """Share of off-diagonal pairs whose |cosine| ≤ bound (nan with a single output)."""
    pairs = _upper_pairs(cosines)
    return (pairs.abs() <= bound).float().mean().item() if len(pairs) else float("nan")
