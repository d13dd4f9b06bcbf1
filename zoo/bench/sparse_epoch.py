"""``sparse-epoch``: one MNIST epoch of configs/set.yaml's SparseNet against the same-shape FCNet, and a SET step.

Both models train in zoo's loop and in the plain one, runs alternating; the SET step (ζ = 0.3,
every sparse layer, the optimizer's state moved with the connections) is timed on the
SparseNet after one epoch, so that it moves trained weights and a real optimizer state.
"""

from __future__ import annotations

import copy

import torch

from zoo import ZooDataModule, ZooModule, create_model
from zoo.bench.configs import shipped_model
from zoo.bench.loops import epoch_runs, plain_epoch
from zoo.bench.timing import best_of_alternating, device_name, seconds
from zoo.callbacks.set import carry_optimizer_state
from zoo.models.set import set_step, step_generator
from zoo.models.sparse import SparseLinear


def set_shaped_models(config: str = "set.yaml") -> tuple[ZooModule, ZooModule]:
    """The SparseNet of ``configs/<config>`` and the dense FCNet of the same widths, activation and dropout."""
    sparse_net = shipped_model(config)
    arguments = sparse_net.hparams
    dense_net = create_model(
        "FCNet",
        hidden=list(arguments["hidden"]),
        activation=arguments.get("activation", "relu"),
        dropout=arguments.get("dropout", 0.0),
    )
    return sparse_net, dense_net


def connections(model: ZooModule) -> int:
    """Weights that connect units (no biases): the sparse layers' connections and every dense weight."""
    total = 0
    for module in model.modules():
        if isinstance(module, SparseLinear):
            total += module.connections
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.numel()
    return total


def sparse_epoch(*, batch_size: int, repeats: int, device: torch.device, log_dir: str) -> dict[str, float]:
    """Best seconds: ``{"sparse/zoo", "sparse/plain", "dense/zoo", "dense/plain"}`` per epoch, and ``"set_step"``."""
    data = ZooDataModule("mnist", batch_size=batch_size)
    data.setup("fit")
    samples = len(data.split("train")[0])
    sparse_net, dense_net = set_shaped_models()
    templates = {"sparse": sparse_net, "dense": dense_net}
    runs = {
        f"{name}/{loop}": run
        for name, template in templates.items()
        for loop, run in epoch_runs(template, data, device=device, log_dir=log_dir).items()
    }
    best = best_of_alternating(runs, repeats)
    dense_connections = connections(dense_net)
    print(
        f"one MNIST training epoch ({samples:,} samples, batch {batch_size}, Adam), {device_name(device)}, "
        f"best of {repeats} alternating runs"
    )
    print(f"{'model':<48}{'connections':>20}{'zoo s/epoch':>13}{'plain s/epoch':>15}")
    names = {
        "sparse": f"SparseNet {sparse_net.hparams.hidden} ε={sparse_net.hparams.epsilon}, {sparse_net.hparams.backend}",
        "dense": f"FCNet {dense_net.hparams.hidden}",
    }
    for name, template in templates.items():
        count = connections(template)
        print(
            f"{names[name]:<48}{f'{count:,} ({count / dense_connections:.2%})':>20}"
            f"{best[f'{name}/zoo']:>13.2f}{best[f'{name}/plain']:>15.2f}"
        )
    print(
        f"sparse speed-up over dense: zoo (Lightning) {best['dense/zoo'] / best['sparse/zoo']:.2f}×, "
        f"plain loop {best['dense/plain'] / best['sparse/plain']:.2f}×"
    )
    best["set_step"] = set_step_seconds(sparse_net, data, repeats=repeats, device=device)
    print(
        f"one SET step (ζ = 0.3, all {len(sparse_net.sparse_layers)} sparse layers, optimizer state moved): "
        f"{best['set_step']:.3f} s, {best['set_step'] / best['sparse/zoo']:.1%} of a sparse epoch"
    )
    return best


def set_step_seconds(template: ZooModule, data: ZooDataModule, *, repeats: int, device: torch.device) -> float:
    """The best of ``repeats + 1`` SET steps (ζ = 0.3) on a copy of ``template`` trained for one epoch."""
    model = copy.deepcopy(template).to(device)
    plain_epoch(model, data, device=device)  # trained weights and an optimizer state to move
    optimizer = torch.optim.Adam(model.parameters())
    model(data.split("train")[0][:128].to(device)).sum().backward()
    optimizer.step()

    def step(epoch: int) -> None:
        for index, layer in enumerate(model.sparse_layers, start=1):
            moved = set_step(layer, 0.3, step_generator(layer.seed, index, epoch))
            carry_optimizer_state(optimizer, layer.connection_parameter, moved.move)

    return min(seconds(lambda epoch=epoch: step(epoch), device) for epoch in range(1, repeats + 2))
