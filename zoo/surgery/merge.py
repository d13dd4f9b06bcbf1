"""Merge networks side by side: one network whose outputs are the sources' outputs, concatenated.

Hidden layer l of the merged FCNet holds every source's layer l; its weights are
block-diagonal (the first layer's blocks stacked, as all sources read the same input), so no
unit sees another source's units and each output group is computed exactly as its source
computed it. Training the merged network further lets the blocks mix.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo.errors import LINKED, ZooError
from zoo.models import FCNet, Population
from zoo.models.population import _key as population_key
from zoo.surgery.layout import init_arguments, rebuild

SHARED = ("activation", "dropout", "batch_norm", "input_shape", "task")


@torch.no_grad()
def merge(models: Sequence[FCNet] | Sequence[Population]) -> FCNet | Population:
    """One FCNet computing ``torch.cat([m(x) for m in models], dim=1)``; populations merge member by member."""
    if all(model.kind == "population" for model in models):
        return merge_populations(models)
    population = next((index for index, model in enumerate(models, start=1) if model.kind == "population"), None)
    if population is not None:
        raise ZooError(
            f"network {population} is a population of {models[population - 1].size} and the others are not all "
            "populations; merging takes single FCNets, or FCNet populations of one size"
        )
    if len(models) < 2:
        raise ZooError(f"merging needs at least two networks, got {len(models)}")
    first = models[0]
    for index, model in enumerate(models, start=1):
        if not isinstance(model, FCNet) or model.hparams.get("rank"):
            raise ZooError(f"network {index} is a {type(model).__name__}; merging takes FCNets without rank")
        if len(model.blocks) != len(first.blocks):
            raise ZooError(f"network {index} has {len(model.blocks)} hidden layers and network 1 {len(first.blocks)}")
        for name in SHARED:
            if tuple(_listed(model.hparams[name])) != tuple(_listed(first.hparams[name])):
                raise ZooError(
                    f"network {index} has {name} {model.hparams[name]} and network 1 {first.hparams[name]}; "
                    "merged networks share it"
                )
    if first.task == "classification":
        raise ZooError("merging puts outputs side by side, which makes one regression; these networks classify")
    hidden = [sum(model.blocks[depth][0].out_features for model in models) for depth in range(len(first.blocks))]
    merged = rebuild(first, hidden=hidden, num_outputs=sum(model.num_outputs for model in models))
    layers = [[*(block[0] for block in model.blocks), model.head] for model in models]
    targets = [*(block[0] for block in merged.blocks), merged.head]
    for depth, target in enumerate(targets):
        parts = [source[depth] for source in layers]
        weights = [part.weight for part in parts]
        target.weight.copy_(torch.cat(weights) if depth == 0 else torch.block_diag(*weights))
        target.bias.copy_(torch.cat([part.bias for part in parts]))
    if first.hparams["batch_norm"]:
        for depth, block in enumerate(merged.blocks):
            norms = [model.blocks[depth][1] for model in models]
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(block[1], name).copy_(torch.cat([getattr(norm, name) for norm in norms]))
    return merged


@torch.no_grad()
def merge_populations(populations: Sequence[Population]) -> Population:
    """Member i of the result merges member i of every population (seeds trained apart, now side by side)."""
    sizes = {population.size for population in populations}
    if len(sizes) != 1 or any(population.architecture != "FCNet" for population in populations):
        raise ZooError(f"merging populations takes FCNet populations of one size; got sizes {sorted(sizes)}")
    members = [merge(group) for group in zip(*(population.members() for population in populations))]
    first = members[0]
    arguments = {key: value for key, value in init_arguments(FCNet, dict(first.hparams)).items() if key not in LINKED}
    shape = {"input_shape": first.input_shape, "num_outputs": first.num_outputs, "task": first.task}
    merged = Population("FCNet", len(members), arguments, populations[0].seeds[0], **shape)
    parameters, buffers = torch.func.stack_module_state(members)
    for name, value in parameters.items():
        merged.stacked_parameters[population_key(name)].copy_(value)
    for name, value in buffers.items():
        getattr(merged, f"stacked__{population_key(name)}").copy_(value)
    return merged.to(populations[0].device)


def _listed(value: object) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]
