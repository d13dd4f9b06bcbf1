"""``TaskSeparation`` callback: run the task-separation analysis during training and write its result."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch

from zoo.analysis.task_separation import TaskSeparationResult, task_separation
from zoo.callbacks.schedule import AnalysisCallback, epoch_label
from zoo.figures import by_preferred_class, heatmap
from zoo.io import to_jsonable
from zoo.writer import AnalysisWriter


class TaskSeparation(AnalysisCallback):
    """Which hidden neurons serve which output, and how the outputs' gradients interfere.

    Runs before training (epoch -1, the initialized network), after every ``every_n_epochs``-th
    training epoch and after the last, on the first ``max_samples`` samples of ``split``. Logs
    heatmaps (interference, orthogonality under both definitions, attribution per layer) and
    scalars to TensorBoard and writes ``<run dir>/analysis/task_separation/epoch_<NNN>.json``.

    Args:
        every_n_epochs: run after every n-th epoch; ``None``: after the last epoch only.
        max_samples: samples analysed (the cost grows linearly with them).
        layers: hidden layers to attribute (default: all); names as in ``hidden_activations``.
        threshold: attribution share that makes a neuron mono-functional.
        split: the data split to analyse; dead neurons are judged on it too.
        before_training: also analyse the initialized network, as epoch -1.
    """

    name = "task_separation"

    def __init__(
        self,
        every_n_epochs: int | None = 1,
        max_samples: int = 10_000,
        layers: list[str] | None = None,
        threshold: float = 0.9,
        split: Literal["train", "val", "test"] = "train",
        before_training: bool = True,
    ) -> None:
        super().__init__(every_n_epochs, max_samples, layers, split, before_training)
        self.threshold = threshold

    def analyse(
        self,
        pl_module: pl.LightningModule,
        datamodule: pl.LightningDataModule,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> TaskSeparationResult:
        names = list(datamodule.output_names)
        return task_separation(pl_module, inputs, targets, names, self.layers, self.threshold, data=self.split)

    def write(self, result: TaskSeparationResult, writer: AnalysisWriter, epoch: int) -> Path | None:
        names, label = result.output_names, epoch_label(epoch)
        writer.scalars(result.summary())
        cosines = {
            "interference": (result.interference, "Gradient interference (cosine)", -1),
            "orthogonality": (result.orthogonality, "Output orthogonality, |a·∂y/∂a| (cosine)", 0),
            "signed_orthogonality": (result.signed_orthogonality, "Output orthogonality, a·∂y/∂a (cosine)", -1),
        }
        for tag, (matrix, title, low) in cosines.items():
            figure = heatmap(matrix, title, names, names, "output", "output", vmin=low, vmax=1, cmap="RdBu_r")
            writer.figure(tag, figure, png=f"{tag}_epoch_{label}.png")
        for layer, share in result.attribution_share.items():
            order = by_preferred_class(share)  # neurons grouped by the output they serve most
            title = f"Attribution share, {layer} (neurons sorted by output)"
            figure = heatmap(share[order], title, None, names, "output", "neuron", 0, 1, "magma", "share")
            writer.figure(f"attribution/{layer}", figure)
        return writer.json(f"epoch_{label}.json", {"epoch": epoch, **to_jsonable(result)})
