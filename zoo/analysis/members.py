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

from zoo.analysis.activations import (
    EXHAUSTIVE_WIDTH,
    ActivationAnalysisResult,
    Compression,
    ImagePrior,
    Thresholds,
    activation_analysis,
    check_maximization,
    describe_layer,
    finish_analysis,
    principal_components,
)
from zoo.analysis.task_separation import (
    TaskSeparationResult,
    _chunks,
    _on_model,
    separation_result,
    task_losses,
    task_separation,
)
from zoo.analysis.units import DEAD_TOLERANCE, dead_mask
from zoo.errors import ZooError
from zoo.models.contract import Analysable, holds_members, output_names_for, select_probes

DEAD_MASK_ELEMENTS = 1 << 22  # activations judged for dead units at once (members × samples × units; 32 MB in double)


def task_separation_of_members(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    *,
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
    if not holds_members(model):
        members = model.members()
        return [task_separation(member, inputs, targets, chunk_size=chunk_size, **options) for member in members]
    if not 0 < threshold <= 1:
        raise ZooError(f"threshold must lie in (0, 1], got {threshold}")
    if len(inputs) == 0:
        raise ZooError("task separation needs at least one sample; got none")
    probes = select_probes(model, layers)
    names = output_names_for(model, inputs, targets, output_names, "task separation")
    with model.analysis_mode(), torch.inference_mode(False), torch.enable_grad():
        gradients, attribution, signed, activations = _member_gradients_and_attribution(
            model, inputs, targets, probes, chunk_size
        )
    targets = _on_model(model, targets)
    dead = {name: _dead_masks(values, dead_tolerance) for name, values in activations.items()}
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
            dead={name: mask[index] for name, mask in dead.items()},
        )
        for index in range(model.size)
    ]


def _dead_masks(activations: torch.Tensor, tolerance: float) -> torch.Tensor:
    """``(members, H)``: each member's dead units of ``(members, N, H)`` activations, a few members at a time."""
    per_part = max(1, DEAD_MASK_ELEMENTS // max(1, activations[0].numel()))  # each part copied in double
    return torch.cat([dead_mask(part, tolerance) for part in activations.split(per_part)])


def _member_gradients_and_attribution(
    model: Analysable, inputs: torch.Tensor, targets: torch.Tensor, probes: list[str], chunk_size: int
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """As the single model's, each with the members first: ``{param: (M, K, ...)}``, ``{layer: (M, H, K)}``, ..."""
    params = {name: p for name, p in model.member_parameters().items() if p.requires_grad}
    inputs, targets = (_on_model(model, tensor) for tensor in (inputs, targets))
    device, dtype = inputs.device, next(model.parameters()).dtype
    members, num_outputs = model.size, model.num_outputs
    counts = torch.bincount(targets, minlength=num_outputs).float() if model.task == "classification" else None
    eye = torch.eye(num_outputs, device=device, dtype=dtype)
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


def activation_analysis_of_members(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    *,
    layers: Sequence[str] | None = None,
    maximize: int = 0,
    prior: ImagePrior | None = None,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor] = (0.0, 1.0),
    thresholds: Thresholds | None = None,
    chunk_size: int = 65536,
    data: str = "",
) -> list[ActivationAnalysisResult]:
    """:func:`~zoo.analysis.activation_analysis` of every member of ``model``, in member order.

    A population's activations and compression checks (the bulk: a forward per k tried) are
    computed for all members at once, each member's projection on its own components; the
    per-layer numbers and activation maximization follow member by member. Arguments as
    :func:`~zoo.analysis.activation_analysis`'s (``thresholds``: default ``Thresholds()``), except
    ``chunk_size``: member-samples per forward.
    """
    thresholds = thresholds or Thresholds()
    options = {"output_names": output_names, "layers": layers, "maximize": maximize, "prior": prior}
    options.update(input_range=input_range, thresholds=thresholds, data=data)
    if not holds_members(model):
        members = model.members()
        return [activation_analysis(member, inputs, targets, chunk_size=chunk_size, **options) for member in members]
    if len(inputs) < 2:
        raise ZooError(
            f"the activation analysis needs at least two samples (variances, correlations); got {len(inputs)}"
        )
    check_maximization(model, maximize, prior)
    probes = select_probes(model, layers)
    names = output_names_for(model, inputs, targets, output_names, "the activation analysis")
    described = f"{len(inputs):,} {data} samples".replace("  ", " ")
    per_pass = max(1, chunk_size // model.size)
    with model.analysis_mode(), torch.no_grad():
        inputs, targets = (_on_model(model, tensor) for tensor in (inputs, targets))  # the model's device, precision
        parts = [model.forward_with_hidden(chunk) for chunk in inputs.split(per_pass)]
        activations = {layer: torch.cat([part[1][layer] for part in parts], dim=1) for layer in probes}  # (M, N, H)
        full = _metric_of_members(model, torch.cat([part[0] for part in parts], dim=1), targets).tolist()
        principal, compressed = {}, {}
        for layer, values in activations.items():
            principal[layer] = [principal_components(member_values) for member_values in values]
            means = torch.stack([mean for mean, _, _ in principal[layer]])
            axes = torch.stack([vectors for _, _, vectors in principal[layer]]).to(values.dtype)
            compressed[layer] = _member_compression(
                model,
                inputs,
                targets,
                layer,
                means,
                axes,
                full=full,
                per_pass=per_pass,
                tolerance=thresholds.compression_tolerance,
            )
        drawn = maximize and prior is not None and len(model.input_shape) >= 2
        results = []
        for index in range(model.size):
            own = {
                layer: describe_layer(
                    layer,
                    values[index],
                    targets,
                    task=model.task,
                    num_outputs=model.num_outputs,
                    eigenvalues=principal[layer][index][1],
                    compressed=compressed[layer][index],
                    output_names=names,
                    thresholds=thresholds,
                    described=described,
                )
                for layer, values in activations.items()
            }
            results.append(
                finish_analysis(
                    model.member(index) if drawn else model,  # images are optimized member by member
                    own,
                    {layer: values[index] for layer, values in activations.items()},
                    inputs,
                    targets,
                    output_names=names,
                    maximize=maximize,
                    prior=prior,
                    input_range=input_range,
                    thresholds=thresholds,
                    data=data,
                )
            )
    return results


def _member_compression(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    means: torch.Tensor,
    axes: torch.Tensor,
    *,
    full: list[float],
    per_pass: int,
    tolerance: float,
) -> list[Compression]:
    """:func:`~zoo.analysis.activations.compression` of every member, each k scored for all members in one pass.

    Every k up to ``EXHAUSTIVE_WIDTH`` units (all of them in one pass where the members are row-wise
    after their probes: :func:`_every_k_scores`); wider layers are bisected, each member on its own
    path (its k chosen by masking its axes beyond k, which projects on its top k). ``full``: each
    member's metric unedited.
    """
    members, width = axes.shape[0], axes.shape[-1]
    classification = model.task == "classification"

    def score(bases: torch.Tensor | None = None) -> torch.Tensor:
        """``(members,)``: each member's metric, its layer projected on its own ``bases`` columns if given."""

        def project(name: str, values: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            mean, basis = data
            return (values - mean) @ basis @ basis.t() + mean if name == layer else values

        edit, member_data = (project, (means, bases)) if bases is not None else (None, None)
        chunks = inputs.split(per_pass)
        outputs = torch.cat([model.forward_with_hidden(x, edit, member_data=member_data)[0] for x in chunks], dim=1)
        return _metric_of_members(model, outputs, targets)

    scores: list[dict[int, float]] = [{} for _ in range(members)]
    if width <= EXHAUSTIVE_WIDTH:
        if model.rowwise_after_probes:
            every = _every_k_scores(model, inputs, targets, layer, means, axes, per_pass=per_pass).tolist()
        else:
            every = [score(axes[:, :, :k]).tolist() for k in range(1, width + 1)]
        for k, values in enumerate(every, start=1):
            for index, value in enumerate(values):
                scores[index][k] = value
        smallest = []
        for index in range(members):
            kept = [k for k in range(1, width + 1) if scores[index][k] >= full[index] - tolerance]
            smallest.append(kept[0] if kept else width)
    else:
        columns = torch.arange(width, device=axes.device)

        def keeps_at(ks: list[int]) -> list[bool]:
            mask = (columns[None, :] < torch.tensor(ks, device=axes.device)[:, None]).to(axes.dtype)
            values = score(axes * mask[:, None, :]).tolist()
            for index, (k, value) in enumerate(zip(ks, values)):
                scores[index].setdefault(k, value)
            return [scores[index][k] >= full[index] - tolerance for index, k in enumerate(ks)]

        kept = keeps_at([width] * members)
        fails, smallest = [0] * members, [width] * members  # as _smallest_k's bisection, every member on its own
        active = [index for index in range(members) if kept[index]]
        while active := [index for index in active if smallest[index] - fails[index] > 1]:
            searching = set(active)
            middles = [(fails[i] + smallest[i]) // 2 if i in searching else width for i in range(members)]
            keeps = keeps_at(middles)
            for index in active:
                if keeps[index]:
                    smallest[index] = middles[index]
                else:
                    fails[index] = middles[index]
    metric = "accuracy" if classification else "r2"
    return [
        Compression(
            metric,
            full[index],
            sorted(scores[index]),
            [scores[index][k] for k in sorted(scores[index])],
            smallest[index],
            tolerance,
        )
        for index in range(members)
    ]


def _every_k_scores(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    means: torch.Tensor,
    axes: torch.Tensor,
    *,
    per_pass: int,
) -> torch.Tensor:
    """``(width, members)``: each member's metric with ``layer`` projected on its top k axes, every k in one pass.

    For a network that is row-wise after its probes: the layers before ``layer`` run once per
    chunk of samples, and the edit there hands the rest of the network each sample's projections
    on the top 1, 2, ..., width axes stacked along the batch (``width`` rows per sample, so
    ``per_pass`` rows still bound a forward's memory). The projections come from one running sum
    of the components, not a product per k; the metric is summed over chunks (correct answers, or
    squared residuals for R²).
    """
    width = axes.shape[-1]

    def every_k(name: str, values: torch.Tensor, data: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        if name != layer:
            return values
        mean, basis = data
        components = ((values - mean) @ basis).t()[:, :, None] * basis.t()[:, None, :]  # (component, n, units)
        components[0] += mean
        return components.cumsum(0).flatten(0, 1)  # (k × n, units), k-major: the rows of k = 1, then k = 2, ...

    classification = model.task == "classification"
    shape, dtype = ((), torch.long) if classification else (targets.shape[1:], means.dtype)
    total = torch.zeros(means.shape[0], width, *shape, dtype=dtype, device=means.device)
    samples = max(1, per_pass // width)
    for x, y in zip(inputs.split(samples), targets.split(samples)):
        outputs = model.forward_with_hidden(x, every_k, member_data=(means, axes))[0]
        outputs = outputs.view(outputs.shape[0], width, len(x), *outputs.shape[2:])  # (members, k, n, outputs)
        if classification:
            total += (outputs.argmax(-1) == y).sum(-1)
        else:
            residual = y - outputs
            total += (residual * residual).sum(2)
    if classification:
        return (total / len(targets)).t()
    return _r2_from_rss(total, targets).t()


def _metric_of_members(model: Analysable, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(members,)``: each member's accuracy or R² from its outputs ``(members, N, outputs)``."""
    if model.task == "classification":  # micro accuracy, as torchmetrics computes it for one model (to the bit)
        return (outputs.argmax(-1) == targets).sum(-1).float() / len(targets)
    return _r2_of_members(outputs, targets)


def _r2_of_members(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(members,)``: each member's R² averaged over outputs, as torchmetrics' ``r2_score`` has it (to the bit)."""
    residual = targets - outputs
    return _r2_from_rss((residual * residual).sum(1), targets)


def _r2_from_rss(rss: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``(...)``: R² averaged over outputs from the residual sums of squares ``(..., outputs)``, as torchmetrics' rules.

    Near-constant targets and perfect fits follow its rules: R² 0 where the targets do not vary
    (within 1e-4) and the residuals do, 1 where the residuals vanish.
    """
    sum_obs, sum_squares = targets.sum(0), (targets * targets).sum(0)
    tss = sum_squares - sum_obs * (sum_obs / len(targets))
    zero = torch.zeros((), dtype=rss.dtype, device=rss.device)
    varied, unexplained = ~torch.isclose(tss, zero, atol=1e-4), ~torch.isclose(rss, zero, atol=1e-4)
    raw = torch.where(unexplained & varied, 1 - rss / tss, torch.where(unexplained, 0.0, 1.0))
    return raw.mean(-1)
