"""``ActivationAnalysis`` callback: dead, selective and redundant units during training (see ``zoo.analyses``)."""

from __future__ import annotations

from typing import Literal

from zoo.analyses.activations import ACTIVATIONS, ActivationOptions
from zoo.callbacks.schedule import AnalysisCallback


class ActivationAnalysis(AnalysisCallback):
    """What each hidden unit does: dead units, class profiles, redundancy, activation maximization.

    Runs after every ``every_n_epochs``-th training epoch (and after the last) on the first
    ``max_samples`` samples of ``split``. Logs to TensorBoard under ``activations/``: the
    activation-maximization images, class-profile and correlation heatmaps, activation
    histograms, scalars and the unit report as text; writes
    ``<run dir>/analysis/activations/epoch_<NNN>.json`` and the images as PNG next to it.

    Args:
        every_n_epochs: run after every n-th epoch; ``None``: after the last epoch only.
        max_samples: samples analysed, 2,000 as in zoo/defaults.yaml.
        layers: hidden layers to analyse (default: all).
        maximize: units per layer to visualize by activation maximization (plus one image
            per class); 0 turns it off. Image datasets only.
        split: the data split to analyse (dead units are judged on it: the training data by default,
            where a unit that never varies really never learns).
        before_training: also analyse the initialized network, as epoch -1.
    """

    def __init__(
        self,
        every_n_epochs: int | None = None,
        *,
        max_samples: int = 2_000,
        layers: list[str] | None = None,
        maximize: int = ActivationOptions.maximize,
        split: Literal["train", "val", "test"] = "train",
        before_training: bool = False,
    ) -> None:
        super().__init__(
            ACTIVATIONS,
            every_n_epochs=every_n_epochs,
            max_samples=max_samples,
            layers=layers,
            split=split,
            before_training=before_training,
            options={"maximize": maximize},
        )
