"""``TaskSeparation`` callback: the task-separation analysis during training (declared in ``zoo.analyses``)."""

from __future__ import annotations

from typing import Literal

from zoo.analyses.task_separation import TASK_SEPARATION, TaskSeparationOptions
from zoo.callbacks.schedule import AnalysisCallback


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

    def __init__(
        self,
        every_n_epochs: int | None = 1,
        *,
        max_samples: int = 2_000,
        layers: list[str] | None = None,
        threshold: float = TaskSeparationOptions.threshold,
        split: Literal["train", "val", "test"] = "train",
        before_training: bool = True,
    ) -> None:
        super().__init__(
            TASK_SEPARATION,
            every_n_epochs=every_n_epochs,
            max_samples=max_samples,
            layers=layers,
            split=split,
            before_training=before_training,
            options={"threshold": threshold},
        )
