"""``TaskSeparation`` callback: run the task-separation analysis during training and write its result."""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch

from zoo.analysis.task_separation import TaskSeparationResult, task_separation
from zoo.callbacks.schedule import AnalysisCallback
from zoo.figures import heatmap
from zoo.io import to_jsonable
from zoo.writer import AnalysisWriter


class TaskSeparation(AnalysisCallback):
    """Which hidden neurons serve which output, and how the outputs' gradients interfere.

    Runs at the end of every ``every_n_epochs``-th training epoch (and after the last) on the
    first ``max_samples`` samples of ``split``. Logs heatmaps (interference, orthogonality,
    attribution per layer) and scalars to TensorBoard and writes
    ``<run dir>/analysis/task_separation/epoch_<NNN>.json``.

    Args:
        every_n_epochs: run after every n-th epoch; ``None``: after the last epoch only.
        max_samples: samples analysed (the cost grows linearly with them).
        layers: hidden layers to attribute (default: all); names as in ``hidden_activations``.
        threshold: attribution share that makes a neuron mono-functional.
        split: the data split to analyse.
    """

    name = "task_separation"

    def __init__(
        self,
        every_n_epochs: int | None = 1,
        max_samples: int = 2000,
        layers: list[str] | None = None,
        threshold: float = 0.9,
        split: Literal["train", "val", "test"] = "val",
    ) -> None:
        super().__init__(every_n_epochs, max_samples, layers, split)
        self.threshold = threshold

    def analyse(
        self,
        pl_module: pl.LightningModule,
        datamodule: pl.LightningDataModule,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> TaskSeparationResult:
        names = list(datamodule.output_names)
        return task_separation(pl_module, inputs, targets, names, self.layers, self.threshold)

    def write(self, result: TaskSeparationResult, writer: AnalysisWriter, epoch: int) -> None:
        names = result.output_names
        writer.scalars(result.summary())
        interference = heatmap(
            result.interference,
            "Gradient interference (cosine)",
            names,
            names,
            "task",
            "task",
            -1,
            1,
            "RdBu_r",
            "cosine",
        )
        orthogonality = heatmap(
            result.orthogonality,
            "Output orthogonality (cosine of attribution)",
            names,
            names,
            "output",
            "output",
            0,
            1,
            "viridis",
            "cosine",
        )
        writer.figure("interference", interference, png=f"interference_epoch_{epoch:03d}.png")
        writer.figure("orthogonality", orthogonality, png=f"orthogonality_epoch_{epoch:03d}.png")
        for layer, share in result.attribution_share.items():
            order = torch.argsort(share.argmax(1) * 2 - share.max(1).values, stable=True)  # neurons by output served
            title = f"Attribution share, {layer} (neurons sorted by output)"
            writer.figure(
                f"attribution/{layer}",
                heatmap(share[order], title, None, names, "output", "neuron", 0, 1, "magma", "share"),
            )
        writer.json(f"epoch_{epoch:03d}.json", {"epoch": epoch, **to_jsonable(result)})
