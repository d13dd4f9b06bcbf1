"""``ActivationAnalysis`` callback: dead, selective and redundant units, and what maximizes them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch

from zoo.analysis.activations import OUTPUT, ActivationAnalysisResult, ImagePrior, activation_analysis
from zoo.callbacks.schedule import AnalysisCallback, epoch_label
from zoo.figures import by_preferred_class, heatmap, image_panel
from zoo.io import to_jsonable
from zoo.writer import AnalysisWriter

PRIOR_IMAGES = 10_000


class ActivationAnalysis(AnalysisCallback):
    """What each hidden unit does: dead units, class profiles, redundancy, activation maximization.

    Runs after every ``every_n_epochs``-th training epoch (and after the last) on the first
    ``max_samples`` samples of ``split``. Logs to TensorBoard under ``activations/``: the
    activation-maximization images, class-profile and correlation heatmaps, activation
    histograms, scalars and the unit report as text; writes
    ``<run dir>/analysis/activations/epoch_<NNN>.json`` and the images as PNG next to it.

    Args:
        every_n_epochs: run after every n-th epoch; ``None``: after the last epoch only.
        max_samples: samples analysed.
        layers: hidden layers to analyse (default: all).
        maximize: units per layer to visualize by activation maximization (plus one image
            per class); 0 turns it off. Image datasets only.
        split: the data split to analyse (dead units are judged on it: the training data by default,
            where a unit that never varies really never learns).
        before_training: also analyse the initialized network, as epoch -1.
    """

    name = "activations"

    def __init__(
        self,
        every_n_epochs: int | None = None,
        max_samples: int = 10_000,
        layers: list[str] | None = None,
        maximize: int = 8,
        split: Literal["train", "val", "test"] = "train",
        before_training: bool = False,
    ) -> None:
        super().__init__(every_n_epochs, max_samples, layers, split, before_training)
        if maximize < 0:
            raise self.error(f"maximize must be 0 or more, got {maximize}")
        self.maximize = maximize
        self.prior: ImagePrior | None = None

    def analyse(
        self,
        pl_module: pl.LightningModule,
        datamodule: pl.LightningDataModule,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> ActivationAnalysisResult:
        low, high = datamodule.input_range
        if self.maximize and self.prior is None and len(pl_module.input_shape) >= 2:
            # once per run, on 10,000 training images (the split is shuffled): plenty for 60 components
            images = datamodule.split("train")[0][:PRIOR_IMAGES]
            self.prior = ImagePrior.fit((images - low) / (high - low))
        names = list(datamodule.output_names)
        return activation_analysis(
            pl_module, inputs, targets, names, self.layers, self.maximize, self.prior, (low, high), data=self.split
        )

    def write(self, result: ActivationAnalysisResult, writer: AnalysisWriter, epoch: int) -> Path | None:
        names, label = result.output_names, epoch_label(epoch)
        writer.scalars(result.summary())
        for layer, stats in result.layers.items():
            writer.histogram(f"histogram/{layer}", result.activations[layer])
            correlation = heatmap(
                stats.correlation,
                f"Correlation between units, {layer}",
                xlabel="unit",
                ylabel="unit",
                vmin=-1,
                vmax=1,
                cmap="RdBu_r",
                colorbar="r",
            )
            writer.figure(f"correlation/{layer}", correlation)
            if stats.class_profile is not None:
                order = by_preferred_class(stats.class_profile)
                profile = heatmap(
                    stats.class_profile[order],
                    f"Mean activation per class, {layer} (units sorted by class)",
                    None,
                    names,
                    "class",
                    "unit",
                    cmap="magma",
                    colorbar="mean activation",
                )
                writer.figure(f"class_profile/{layer}", profile)
            writer.text(f"report/{layer}", stats.report.replace("\n", "  \n"))  # markdown line breaks
        for layer, images in result.maximization.items():
            units = result.maximized_units[layer]
            if layer == OUTPUT:
                titles, caption = [names[k] for k in units], "Inputs that maximize each class logit"
            else:
                titles, caption = [f"unit {unit}" for unit in units], f"Inputs that maximize units of {layer}"
            png = f"maximization_{layer.replace('/', '_')}_epoch_{label}.png"
            writer.figure(f"maximization/{layer}", image_panel(images, titles, caption), png=png)
        return writer.json(f"epoch_{label}.json", {"epoch": epoch, **to_jsonable(result)})
