"""The activation analysis, declared: options, numbers, figures, dashboard (the function is ``zoo.analysis``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure

from zoo.analyses.declaration import Analysis, Number, Samples, register_analysis
from zoo.analysis.activations import OUTPUT, ActivationAnalysisResult, ImagePrior, activation_analysis
from zoo.analysis.members import activation_analysis_of_members
from zoo.errors import ZooError
from zoo.figures import class_profile_map, correlation_map, pca_and_compression, unit_gallery

PRIOR_IMAGES = 10_000  # training images the activation-maximization prior is fitted on (once per run)
PREFERRED = 0.15  # a class holding this share of a unit's mean activation over classes is named as one it prefers


@dataclass(frozen=True)
class ActivationOptions:
    """maximize: units per layer shown by activation maximization (plus one image per class); 0: none.

    Maximization needs image inputs and training images for its prior (a study's rows, which
    draw no figure, get none).
    """

    maximize: int = 8

    def __post_init__(self) -> None:
        if self.maximize < 0:
            raise ZooError(f"maximize must be 0 or more, got {self.maximize}")


def run(
    model: Any, samples: Samples, options: ActivationOptions, *, layers: list[str] | None, cache: dict
) -> ActivationAnalysisResult:
    return _run(activation_analysis, model, samples, options, layers=layers, cache=cache)


def run_members(
    model: Any, samples: Samples, options: ActivationOptions, *, layers: list[str] | None, cache: dict
) -> list[ActivationAnalysisResult]:
    return _run(activation_analysis_of_members, model, samples, options, layers=layers, cache=cache)


def _run(
    analysis: Any, model: Any, samples: Samples, options: ActivationOptions, *, layers: list[str] | None, cache: dict
) -> Any:
    prior = None
    if options.maximize and samples.images is not None and len(model.input_shape) >= 2:
        if "prior" not in cache:  # once per run, on 10,000 training images (the split is shuffled): plenty
            low, high = samples.input_range
            cache["prior"] = ImagePrior.fit((samples.images()[:PRIOR_IMAGES] - low) / (high - low))
        prior = cache["prior"]
    return analysis(
        model,
        samples.inputs,
        samples.targets,
        samples.output_names,
        layers=layers,
        maximize=options.maximize if prior is not None else 0,
        prior=prior,
        input_range=samples.input_range,
        data=samples.split,
    )


def figures(result: ActivationAnalysisResult, *, history: list[dict]) -> dict[str, Figure]:
    """Per layer: correlations, class profiles, the PCA spectrum and compression; the maximizing inputs."""
    names, drawn = result.output_names, {}
    for layer, stats in result.layers.items():
        drawn[f"correlation/{layer}"] = correlation_map(stats.correlation, layer)
        if stats.class_profile is not None:
            drawn[f"class_profile/{layer}"] = class_profile_map(stats.class_profile, names, layer)
        compressed = stats.compression
        drawn[f"compression/{layer}"] = pca_and_compression(
            stats.explained_variance,
            ks=compressed.k,
            scores=compressed.score,
            full=compressed.full,
            tolerance=compressed.tolerance,
            smallest_k=compressed.smallest_k,
            metric=compressed.metric,
            layer=layer,
        )
    for layer, images in result.maximization.items():
        what = "each class logit" if layer == OUTPUT else f"units of {layer}"
        title = f"Inputs that maximize {what} (red frame), beside the analysed samples that drive it hardest"
        drawn[f"maximization/{layer}"] = unit_gallery(
            images, result.examples[layer], _captions(result, layer), title, note=_caption_note(result, layer)
        )
    return drawn


def texts(result: ActivationAnalysisResult) -> dict[str, str]:
    return {f"report/{layer}": stats.report.replace("\n", "  \n") for layer, stats in result.layers.items()}


def histograms(result: ActivationAnalysisResult) -> dict[str, torch.Tensor]:
    return {f"histogram/{layer}": values for layer, values in result.activations.items()}


def describe(result: ActivationAnalysisResult) -> str:
    """Every layer's unit report."""
    return "\n\n".join(stats.report for stats in result.layers.values())


def _captions(result: ActivationAnalysisResult, layer: str) -> list[str]:
    """What each maximized unit is, in words: the value its input reaches, its preferred classes, selectivity."""
    names, captions = result.output_names, []
    for unit, value in zip(result.maximized_units[layer], result.maximized_values[layer]):
        if layer == OUTPUT:
            captions.append(f"class {names[unit]}\nlogit {value:.1f}")
            continue
        stats = result.layers[layer]
        text = f"unit {unit}\nactivation {value:.2f}"
        if stats.class_profile is not None:
            profile = stats.class_profile[unit].nan_to_num(0).clamp_min(0)
            share = profile / profile.sum().clamp_min(1e-12)
            top = [k for k in share.argsort(descending=True)[:2].tolist() if share[k] >= PREFERRED]
            if top:
                text += "\nprefers " + "\n  and ".join(f"{names[k]} ({share[k]:.0%})" for k in top)
            if stats.selectivity is not None:
                text += f"\nselectivity {stats.selectivity[unit]:.2f}"
        captions.append(text)
    return captions


def _caption_note(result: ActivationAnalysisResult, layer: str) -> str:
    """What the words and numbers beside each row mean."""
    if layer == OUTPUT:
        return "logit: the class's logit on its maximizing input (red frame)."
    note = "activation: the unit's value on its maximizing input (red frame)."
    stats = result.layers[layer]
    if stats.class_profile is not None:
        note += (
            f" prefers: the classes whose samples hold at least {PREFERRED:.0%} of the unit's mean activation"
            " summed over classes (their share in brackets)."
        )
        if stats.selectivity is not None:
            note += (
                " selectivity: (μ_max − μ_rest) / (μ_max + μ_rest), μ_max the preferred class's mean activation and"
                " μ_rest the other classes' mean; 0 (no preference) to 1 (one class only)."
            )
    return note


ACTIVATIONS = register_analysis(
    Analysis(
        name="activations",
        title="activations",
        run=run,
        run_members=run_members,
        options=ActivationOptions,
        numbers=(
            Number("*/dead_fraction", "dead units (share, mean over layers)", "lower", bounds=(0.0, 1.0)),
            Number(
                "*/components_90", "principal components for 90% of variance (count, mean over layers)", compared=True
            ),
            Number("*/components_99", "principal components for 99% of variance (count, mean over layers)"),
            Number("*/redundant_pairs", "redundant unit pairs, |r| ≥ 0.95 (count, mean over layers)", "lower"),
            Number(
                "*/compressed_width",
                "smallest k components keeping the metric (count, mean over layers)",
                compared=True,
            ),
        ),
        figures=figures,
        texts=texts,
        histograms=histograms,
        describe=describe,
        layout={
            "dead units per layer": r".*/dead_fraction",
            "components for 90% of variance": r".*/components_90",
        },
    )
)
