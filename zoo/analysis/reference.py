"""Slow, obviously-correct loops that the vectorized analyses are checked and timed against.

One backward pass per sample and per output: what the analyses would cost
without batched autograd. Used by the tests and by ``scripts/bench.py``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def task_gradients_loop(model, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradient of each task's loss, one sample and one task at a time: ``{parameter: (K, *shape)}``."""
    params = dict(model.named_parameters())
    gradients = {name: torch.zeros(model.num_outputs, *p.shape) for name, p in params.items()}
    with model.analysis_mode():
        for k in range(model.num_outputs):
            members = [i for i in range(len(inputs)) if model.task != "classification" or int(targets[i]) == k]
            for i in members:
                output = model(inputs[i : i + 1])
                if model.task == "classification":
                    loss = F.cross_entropy(output, targets[i : i + 1]) / len(members)
                else:
                    loss = (output[0, k] - targets[i, k]).square() / len(inputs)
                for name, grad in zip(params, torch.autograd.grad(loss, list(params.values()), allow_unused=True)):
                    if grad is not None:
                        gradients[name][k] += grad
    return gradients


def attribution_loop(model, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean |a_h · ∂y_k/∂a_h|, one sample and one output at a time: ``{layer: (H, K)}``."""
    totals: dict[str, torch.Tensor] = {}
    with model.analysis_mode():
        for i in range(len(inputs)):
            for k in range(model.num_outputs):
                outputs, hidden = model.forward_with_hidden(inputs[i : i + 1])
                grads = torch.autograd.grad(outputs[0, k], list(hidden.values()))
                for (layer, activations), grad in zip(hidden.items(), grads):
                    column = (activations[0] * grad[0]).abs().detach()
                    totals.setdefault(layer, torch.zeros(len(column), model.num_outputs))[:, k] += column
    return {layer: total / len(inputs) for layer, total in totals.items()}
