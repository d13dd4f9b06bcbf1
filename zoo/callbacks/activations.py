"""``ActivationAnalysis`` callback: dead, selective and redundant units, and what maximizes them."""

from __future__ import annotations

from typing import Literal

import pytorch_lightning as pl
import torch

from zoo.analysis.activations import OUTPUT, ActivationAnalysis as Result, ImagePrior, activation_analysis
from zoo.callbacks.schedule import AnalysisCallback
from zoo.report import RunReport, heatmap, image_panel

PRIOR_IMAGES = 10_000


class ActivationAnalysis(AnalysisCallback):
    """What each hidden unit does: dead units, class profiles, redundancy, activation maximization.

    Runs after every ``every_n_epochs``-th training epoch (and after the last) on the first
    ``max_samples`` samples of ``split``. Logs to TensorBoard under ``activations/``: the
    activation-maximization images, class-profile and correlation heatmaps, activation
    histograms, scalars and the unit report as text; writes
    ``<run dir>/analysis/activations/epoch_<NNN>.json`` and the images as PNG next to it.

    Args:
        every_n_epochs: how often to run.
        max_samples: samples analysed.
        layers: hidden layers to analyse (default: all).
        maximize: units per layer to visualize by activation maximization (plus one image
            per class); 0 turns it off. Image datasets only.
        split: the data split to analyse.
    """

    name = "activations"

    def __init__(self, every_n_epochs: int = 1, max_samples: int = 2000, layers: list[str] | None = None, maximize: int = 8, split: Literal["train", "val", "test"] = "val") -> None:
        super().__init__(every_n_epochs, max_samples, layers, split)
        if maximize < 0:
            raise self.error(f"maximize must be 0 or more, got {maximize}")
        self.maximize = maximize
        self.prior: ImagePrior | None = None

    def analyse(self, pl_module: pl.LightningModule, datamodule: pl.LightningDataModule, inputs: torch.Tensor, targets: torch.Tensor) -> Result:
        low, high = datamodule.input_range
        if self.maximize and self.prior is None and len(pl_module.input_shape) >= 2:
            # once per run, on 10,000 training images (the split is shuffled): plenty for 60 components
            images = datamodule.split("train")[0][:PRIOR_IMAGES]
            self.prior = ImagePrior.fit((images - low) / (high - low))
        return activation_analysis(
            pl_module, inputs, targets, list(datamodule.output_names), self.layers, self.maximize, self.prior, (low, high)
        )

    def report(self, result: Result, report: RunReport, epoch: int) -> None:
        names = result.output_names
        scalars = {}
        for layer, stats in result.layers.items():
            scalars.update({
                f"{layer}/dead_fraction": len(stats.dead) / stats.units,
                f"{layer}/components_99": stats.components_99,
                f"{layer}/redundant_pairs": stats.redundant_pairs,
                f"{layer}/compressed_width": stats.compression["smallest_k"],
            })
            report.histogram(f"histogram/{layer}", result.activations[layer])
            report.figure(f"correlation/{layer}", heatmap(stats.correlation, f"Correlation between units, {layer}", xlabel="unit", ylabel="unit", vmin=-1, vmax=1, cmap="RdBu_r", colorbar="r"))
            if stats.class_profile is not None:
                order = torch.argsort(stats.class_profile.argmax(1) * 2 - stats.selectivity.clamp(0, 1), stable=True)
                report.figure(f"class_profile/{layer}", heatmap(stats.class_profile[order], f"Mean activation per class, {layer} (units sorted by class)", None, names, "class", "unit", cmap="magma", colorbar="mean activation"))
            report.text(f"report/{layer}", stats.report.replace("\n", "  \n"))  # markdown line breaks
        report.scalars(scalars)
        for layer, images in result.maximization.items():
            units = result.maximized_units[layer]
            titles = [names[k] for k in units] if layer == OUTPUT else [f"unit {unit}" for unit in units]
            caption = "Inputs that maximize each class logit" if layer == OUTPUT else f"Inputs that maximize units of {layer}"
            report.figure(f"maximization/{layer}", image_panel(images, titles, caption), png=f"maximization_{layer.replace('/', '_')}_epoch_{epoch:03d}.png")
        report.json(f"epoch_{epoch:03d}.json", {
            "epoch": epoch,
            "output_names": names,
            "dead": {layer: {"never_active": s.never_active, "constant": s.constant, "fraction": len(s.dead) / s.units} for layer, s in result.layers.items()},
            "class_profile": {layer: s.class_profile for layer, s in result.layers.items()},
            "selectivity": {layer: s.selectivity for layer, s in result.layers.items()},
            "redundancy": {
                layer: {"redundant_pairs": s.redundant_pairs, "components_90": s.components_90, "components_99": s.components_99, "explained_variance": s.explained_variance}
                for layer, s in result.layers.items()
            },
            "compression": {layer: s.compression for layer, s in result.layers.items()},
            "report": {layer: s.report for layer, s in result.layers.items()},
            "maximized_units": result.maximized_units,
        })
