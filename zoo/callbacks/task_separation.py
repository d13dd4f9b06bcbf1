"""``TaskSeparation`` callback: run the task-separation analysis during training and write its result."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch
from matplotlib.figure import Figure

from zoo.analysis.task_separation import TaskSeparationResult, task_separation
from zoo.callbacks.schedule import AnalysisCallback
from zoo.figures import by_preferred_class, heatmap, over_epochs, roles_chart
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
        max_samples: samples analysed (the cost grows linearly with them), 2,000 as in zoo/defaults.yaml.
        layers: hidden layers to attribute (default: all); names as in ``hidden_activations``.
        threshold: attribution share that makes a neuron mono-functional.
        split: the data split to analyse; dead neurons are judged on it too.
        before_training: also analyse the initialized network, as epoch -1.
    """

    name = "task_separation"

    def __init__(
        self,
        every_n_epochs: int | None = 1,
        max_samples: int = 2_000,
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

    def write(
        self, result: TaskSeparationResult, writer: AnalysisWriter, epoch: int, inputs: torch.Tensor
    ) -> Path | None:
        names = result.output_names
        writer.scalars(result.summary())
        cosines = {
            "interference": (result.interference, "Gradient interference: cosine of the tasks' loss gradients"),
            "orthogonality": (result.orthogonality, "Output orthogonality: cosine of |a·∂y/∂a| columns (0 = disjoint)"),
            "signed_orthogonality": (result.signed_orthogonality, "Output orthogonality: cosine of a·∂y/∂a columns"),
        }
        for tag, (matrix, title) in cosines.items():
            signed = tag != "orthogonality"  # the magnitude view cannot go below 0
            writer.figure(tag, heatmap(matrix, title, names, names, "output", "output", signed, "cosine"))
        for layer, share in result.attribution_share.items():
            order = by_preferred_class(share)  # neurons grouped by the output they serve most
            title = f"Attribution share, {layer} (neurons grouped by the output they serve most)"
            ids = [str(unit) for unit in order.tolist()]
            figure = heatmap(share[order], title, ids, names, "output", "neuron", False, "share", False, limits=(0, 1))
            writer.figure(f"attribution/{layer}", figure)
        writer.figure("roles", roles_chart({**result.roles, **result.column_roles}, self.threshold))
        data = {"epoch": epoch, **to_jsonable(result)}
        history = [*(earlier for earlier in writer.earlier_results() if earlier["epoch"] != epoch), data]
        if len(history) > 1:
            writer.figure("over_epochs", _over_epochs_figure(history))
        return writer.json(data)


def _over_epochs_figure(history: list[dict]) -> Figure:
    """Every output pair's interference and both orthogonalities at each analysed epoch."""
    panels = {
        "interference": "gradient interference",
        "orthogonality": "orthogonality, |a·∂y/∂a|",
        "signed_orthogonality": "orthogonality, a·∂y/∂a",
    }
    series = {}
    for key, title in panels.items():
        lines: dict[str, list[float]] = {}
        for result in history:
            for pair in result["pairs"]:
                value = pair[key]
                lines.setdefault(" · ".join(pair["outputs"]), []).append(math.nan if value is None else value)
        series[title] = lines
    epochs = [result["epoch"] for result in history]
    return over_epochs(series, epochs, "Output pairs over training (cosines; one point per analysed epoch)")
