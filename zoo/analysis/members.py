"""Analyses of every member of a population at once: one batched pass instead of one pass per member.

A population of small networks is analysed for each member; run member by member, the
bookkeeping of a pass (a forward, two backwards, Python around them) costs far more than its
arithmetic. Here the population's own batched forward (``forward_with_hidden`` gives every
member's outputs and activations, ``(members, N, ...)``) feeds one batched backward for all
members: members are independent, so the gradient of the sum over members is each member's
own gradient, side by side. Each member's result is then assembled exactly as for a single
model, and equals the member-by-member one to float tolerance (tests/test_speed.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo.analysis.task_separation import (
    TaskSeparationResult,
    _chunks,
    separation_result,
    task_losses,
    task_separation,
)
from zoo.analysis.units import DEAD_TOLERANCE
from zoo.errors import ZooError
from zoo.models.contract import Analysable, select_probes


def is_batched(model: Analysable) -> bool:
    """Whether ``model`` computes its members together (a population), so its analyses can be batched."""
    return hasattr(model, "member_parameters")


def task_separation_of_members(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
    threshold: float = 0.9,
    dead_tolerance: float = DEAD_TOLERANCE,
    chunk_size: int = 16384,
    data: str = "",
) -> list[TaskSeparationResult]:
    """:func:`~zoo.analysis.task_separation` of every member of ``model``, in member order.

    A population is analysed in batched passes; any other model member by member. Arguments
    as :func:`~zoo.analysis.task_separation`'s, except ``chunk_size``: member-samples per
    batched backward pass (memory: outputs × chunk × widest layer).
    """
    options = {"output_names": output_names, "layers": layers, "threshold": threshold}
    options.update(dead_tolerance=dead_tolerance, data=data)
    if not is_batched(model):
        members = model.members()
        return [task_separation(member, inputs, targets, chunk_size=chunk_size, **options) for member in members]
    if not 0 < threshold <= 1:
        raise ZooError(f"threshold must lie in (0, 1], got {threshold}")
    if len(inputs) == 0:
        raise ZooError("task separation needs at least one sample; got none")
    probes = select_probes(model, layers)
    names = list(output_names) if output_names is not None else [str(k) for k in range(model.num_outputs)]
    with model.analysis_mode(), torch.inference_mode(False), torch.enable_grad():
        gradients, attribution, signed, activations = _member_gradients_and_attribution(
            model, inputs, targets, probes, chunk_size
        )
    targets = targets.to(next(iter(gradients.values())).device)
    return [
        separation_result(
            model,
            gradients={name: grad[index] for name, grad in gradients.items()},
            attribution={name: values[index] for name, values in attribution.items()},
            signed={name: values[index] for name, values in signed.items()},
            activations={name: values[index] for name, values in activations.items()},
            targets=targets,
            output_names=names,
            threshold=threshold,
            dead_tolerance=dead_tolerance,
            data=data,
        )
        for index in range(model.size)
    ]


def _member_gradients_and_attribution(
    model: Analysable, inputs: torch.Tensor, targets: torch.Tensor, probes: list[str], chunk_size: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """As the single model's, each with the members first: ``{param: (M, K, ...)}``, ``{layer: (M, H, K)}``, ..."""
    params = {name: p for name, p in model.member_parameters().items() if p.requires_grad}
    device = next(iter(params.values())).device
    inputs, targets = (t.to(device).clone() if t.is_inference() else t.to(device) for t in (inputs, targets))
    members, num_outputs = model.size, model.num_outputs
    counts = torch.bincount(targets, minlength=num_outputs).float() if model.task == "classification" else None
    eye = torch.eye(num_outputs, device=device)
    gradients = {name: p.new_zeros(members, num_outputs, *p.shape[1:]) for name, p in params.items()}
    magnitude: dict[str, torch.Tensor] = {}
    signed: dict[str, torch.Tensor] = {}
    activations: dict[str, list[torch.Tensor]] = {name: [] for name in probes}
    for index in _chunks(targets, model.task, num_outputs, max(1, chunk_size // members)):
        x, y = inputs[index], targets[index]
        outputs, hidden = model.forward_with_hidden(x)  # (M, n, K), {layer: (M, n, H)}
        chosen = {name: hidden[name] for name in probes}
        one_hot = eye[:, None, None].expand(-1, members, len(x), -1)  # ∂y_k/∂a of every member, every k at once
        grads_hidden = torch.autograd.grad(
            outputs, list(chosen.values()), one_hot, is_grads_batched=True, retain_graph=True
        )
        for (name, values), grad in zip(chosen.items(), grads_hidden):
            contribution = values.detach() * grad  # (K, M, n, H)
            magnitude[name] = magnitude.get(name, 0) + contribution.abs().sum(2).permute(1, 2, 0)
            signed[name] = signed.get(name, 0) + contribution.sum(2).permute(1, 2, 0)
            activations[name].append(values.detach())
        losses = task_losses(outputs, y, model.task, counts, len(inputs)).sum(1)  # (M, K)
        if model.task == "classification":
            task = int(y[0])  # the chunk holds one class: it adds to one task's gradient, of every member
            for name, grad in zip(params, torch.autograd.grad(losses[:, task].sum(), list(params.values()))):
                gradients[name][:, task] += grad
        else:
            batched = torch.autograd.grad(losses.sum(0), list(params.values()), eye, is_grads_batched=True)
            for name, grad in zip(params, batched):
                gradients[name] += grad.transpose(0, 1)
    n = len(inputs)
    return (
        gradients,
        {name: total / n for name, total in magnitude.items()},
        {name: total / n for name, total in signed.items()},
        {name: torch.cat(parts, dim=1) for name, parts in activations.items()},
    )
