"""``TaskSeparation`` callback: run the task-separation analysis during training and report it."""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch

from zoo.analysis.task_separation import TaskSeparation as Result
from zoo.analysis.task_separation import task_separation
from zoo.callbacks.schedule import AnalysisCallback
from zoo.report import RunReport, heatmap


class TaskSeparation(AnalysisCallback):
    """Which hidden neurons serve which output, and how the outputs' gradients interfere.

    Runs at the end of every ``every_n_epochs``-th training epoch (and after the last) on the
    first ``max_samples`` samples of ``split``. Logs heatmaps (interference, orthogonality,
    attribution per layer) and scalars to TensorBoard and writes
    ``<run dir>/analysis/task_separation/epoch_<NNN>.json``.

    Args:
        every_n_epochs: how often to run.
        max_samples: samples analysed (the cost grows linearly with them).
        layers: hidden layers to attribute (default: all); names as in ``hidden_activations``.
        threshold: attribution share that makes a neuron mono-functional.
        split: the data split to analyse.
    """

    name = "task_separation"

    def __init__(self, every_n_epochs: int = 1, max_samples: int = 2000, layers: list[str] | None = None, threshold: float = 0.9, split: Literal["train", "val", "test"] = "val") -> None:
        super().__init__(every_n_epochs, max_samples, layers, split)
        self.threshold = threshold

    def analyse(self, pl_module: pl.LightningModule, datamodule: pl.LightningDataModule, inputs: torch.Tensor, targets: torch.Tensor) -> Result:
        return task_separation(pl_module, inputs, targets, output_names=list(datamodule.output_names), layers=self.layers, threshold=self.threshold)

    def report(self, result: Result, report: RunReport, epoch: int) -> None:
        names = result.output_names
        scalars = {
            "mean_interference": result.mean_interference,
            "conflict_fraction": result.conflict_fraction,
            "orthogonal_fraction": result.orthogonal_fraction,
        }
        for group, roles in result.roles.items():
            scalars.update({f"{group}/{role}_fraction": roles[f"{role}_fraction"] for role in ("mono", "shared", "dead")})
        report.scalars(scalars)
        interference = heatmap(result.interference, "Gradient interference (cosine)", names, names, "task", "task", -1, 1, "RdBu_r", "cosine")
        orthogonality = heatmap(result.orthogonality, "Output orthogonality (cosine of attribution)", names, names, "output", "output", 0, 1, "viridis", "cosine")
        report.figure("interference", interference, png=f"interference_epoch_{epoch:03d}.png")
        report.figure("orthogonality", orthogonality, png=f"orthogonality_epoch_{epoch:03d}.png")
        for layer, share in result.attribution_share.items():
            order = torch.argsort(share.argmax(1) * 2 - share.max(1).values, stable=True)  # group neurons by the output they serve
            report.figure(f"attribution/{layer}", heatmap(share[order], f"Attribution share, {layer} (neurons sorted by output)", None, names, "output", "neuron", 0, 1, "magma", "share"))
        report.json(f"epoch_{epoch:03d}.json", {
            "epoch": epoch,
            "output_names": names,
            "interference": result.interference,
            "interference_per_layer": result.interference_per_layer,
            "mean_interference": result.mean_interference,
            "conflict_fraction": result.conflict_fraction,
            "attribution": result.attribution,
            "attribution_share": result.attribution_share,
            "roles": result.roles,
            "orthogonality": result.orthogonality,
            "orthogonality_per_layer": result.orthogonality_per_layer,
            "orthogonal_fraction": result.orthogonal_fraction,
        })
