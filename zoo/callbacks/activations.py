"""``ActivationAnalysis`` callback: dead, selective and redundant units, and what maximizes them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytorch_lightning as pl
import torch

from zoo.analysis.activations import OUTPUT, ActivationAnalysisResult, ImagePrior, activation_analysis
from zoo.callbacks.schedule import AnalysisCallback
from zoo.figures import class_profile_map, correlation_map, pca_and_compression, unit_gallery
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
        max_samples: samples analysed, 2,000 as in zoo/defaults.yaml.
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
        max_samples: int = 2_000,
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
        low, high = self.input_range = datamodule.input_range
        if self.maximize and self.prior is None and len(pl_module.input_shape) >= 2:
            # once per run, on 10,000 training images (the split is shuffled): plenty for 60 components
            images = datamodule.split("train")[0][:PRIOR_IMAGES]
            self.prior = ImagePrior.fit((images - low) / (high - low))
        names = list(datamodule.output_names)
        return activation_analysis(
            pl_module, inputs, targets, names, self.layers, self.maximize, self.prior, (low, high), data=self.split
        )

    def write(
        self, result: ActivationAnalysisResult, writer: AnalysisWriter, epoch: int, inputs: torch.Tensor
    ) -> Path | None:
        names = result.output_names
        writer.scalars(result.summary())
        for layer, stats in result.layers.items():
            writer.histogram(f"histogram/{layer}", result.activations[layer])
            writer.figure(f"correlation/{layer}", correlation_map(stats.correlation, layer))
            if stats.class_profile is not None:
                writer.figure(f"class_profile/{layer}", class_profile_map(stats.class_profile, names, layer))
            compressed = stats.compression
            spectrum = pca_and_compression(
                stats.explained_variance, compressed.k, compressed.score, compressed.full, compressed.tolerance,
                compressed.smallest_k, compressed.metric, layer,
            )  # fmt: skip
            writer.figure(f"compression/{layer}", spectrum)
            writer.text(f"report/{layer}", stats.report.replace("\n", "  \n"))  # markdown line breaks
        if result.maximization:
            low, high = self.input_range
            pixels = ((inputs - low.to(inputs.device)) / (high - low).to(inputs.device)).clamp(0, 1)
            for layer, images in result.maximization.items():
                examples = pixels[torch.as_tensor(result.top_samples[layer], device=inputs.device)]
                captions = _captions(result, layer)
                what = "each class logit" if layer == OUTPUT else f"units of {layer}"
                title = f"Inputs that maximize {what} (red frame), beside the analysed samples that drive it hardest"
                writer.figure(f"maximization/{layer}", unit_gallery(images, examples, captions, title))
        return writer.json({"epoch": epoch, **to_jsonable(result)})


def _captions(result: ActivationAnalysisResult, layer: str) -> list[str]:
    """What each maximized unit is: its preferred classes with their shares, selectivity, the value reached."""
    names, captions = result.output_names, []
    for unit, value in zip(result.maximized_units[layer], result.maximized_values[layer]):
        if layer == OUTPUT:
            captions.append(f"class {names[unit]}\nlogit {value:.1f}")
            continue
        stats = result.layers[layer]
        text = f"unit {unit}\nact. {value:.2f}"
        if stats.class_profile is not None:
            profile = stats.class_profile[unit].nan_to_num(0).clamp_min(0)
            share = profile / profile.sum().clamp_min(1e-12)
            top = share.argsort(descending=True)[:2].tolist()
            text += "\n" + ", ".join(f"{names[k]} {share[k]:.0%}" for k in top if share[k] >= 0.15)
            if stats.selectivity is not None:
                text += f"\nsel. {stats.selectivity[unit]:.2f}"
        captions.append(text)
    return captions
