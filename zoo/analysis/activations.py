"""Activation analysis: what hidden units respond to, which are dead, which are redundant.

Per hidden layer (per ColumNet column too, whose layers are probed per column):

1. dead units: constant over the analysed samples (``zoo.analysis.units``, the definition
   task separation shares), split into never active (exactly 0) and other constants;
2. class profile: mean activation per class, Morcos et al.'s class selectivity, and how
   often each unit fires (is positive);
3. redundancy: correlations, principal components, and a compression check that
   replaces the layer by its projection on the top-k components and measures
   what accuracy remains;
4. activation maximization: inputs that maximize chosen units and each output's
   logit under a Gaussian prior fitted to the training images, all images of a
   layer in one batched optimization;
5. a unit report in plain words, generated from these numbers and the thresholds used.

Formulas and figures: docs/activations.md. Everything runs on the model's
device, vectorized over samples and units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torchmetrics.functional import r2_score
from torchmetrics.functional.classification import multiclass_accuracy

from zoo.analysis.units import DEAD_TOLERANCE, dead_units
from zoo.errors import ZooError
from zoo.models.contract import Analysable, output_names_for, require_one_model, select_probes

OUTPUT = "output"  # the pseudo-layer name under which class logits are maximized
EXHAUSTIVE_WIDTH = 64  # layers up to this width have every k of the compression check scored; wider, bisection


@dataclass(frozen=True)
class Thresholds:
    """The choices behind the activation analysis's counts and sentences, reported with them."""

    dead_tolerance: float = DEAD_TOLERANCE  # relative variance at or below which a unit is dead
    redundancy: float = 0.95  # |r| at or above which two units are redundant
    compression_tolerance: float = 0.005  # metric loss a compressed layer may have (half a point)
    class_share: float = 0.15  # share of a unit's class-mean activity that makes a class worth naming
    selectivity: float = 0.5  # class selectivity at or above which the report lists a unit: its class ≥ 3× the others


@dataclass
class Compression:
    """The task metric when a layer is replaced by its projection on its top-k principal components."""

    metric: str  # "accuracy" or "r2"
    full: float  # the unedited network's
    k: list[int]  # every k tried, ascending: all up to the width for small layers, a bisection's for wide ones
    score: list[float]  # the metric at each k
    smallest_k: int  # smallest k whose metric is within the tolerance of ``full`` (see ``compression``)
    tolerance: float


@dataclass
class LayerActivations:
    """What one hidden layer does on the analysed samples."""

    units: int
    never_active: list[int]  # dead at exactly 0 on every sample (a dead ReLU)
    constant: list[int]  # the other dead units: (nearly) constant, e.g. saturated, or firing too rarely and weakly
    firing_rate: torch.Tensor  # (H,) share of samples on which the unit is positive
    class_profile: torch.Tensor | None  # (H, K) mean activation per class, NaN for absent classes
    selectivity: torch.Tensor | None  # (H,) (μ_max − μ_rest) / (μ_max + μ_rest) over present classes
    correlation: torch.Tensor = field(metadata={"json": False})  # (H, H) Pearson r, 0 where a unit is constant
    redundant_pairs: int = 0  # unit pairs with |r| ≥ the redundancy threshold
    explained_variance: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # cumulative, top-k components
    components_90: int = 0
    components_99: int = 0
    compression: Compression | None = None
    report: str = ""  # the layer in plain words (unit_report)

    @property
    def dead(self) -> list[int]:
        return sorted(self.never_active + self.constant)

    @property
    def dead_fraction(self) -> float:
        return len(self.dead) / self.units

    @property
    def selective_units(self) -> list[int]:
        """Live units by selectivity × their preferred class's mean activation, one class at a time.

        Selectivity alone ranks first the near-silent units that fire on a handful of samples of
        one class (selectivity 1.00 at a class mean of 0.0001); weighting by the activation the
        unit actually produces for its class puts units that respond strongly and selectively
        first. Classes with more ink (0, 8) give larger activations, so the ranking takes the
        best unit of each preferred class in turn, then the second best of each, and so on.
        Empty for regression and for layers with negative activations, where the index has no reading.
        Every live unit is ranked; the report lists those at or above ``Thresholds.selectivity``.
        """
        if self.selectivity is None:
            return []
        profile = self.class_profile.nan_to_num(-torch.inf)
        score = self.selectivity * profile.max(1).values
        preferred = profile.argmax(1).tolist()
        dead = set(self.dead)
        ranked = [unit for unit in score.argsort(descending=True).tolist() if unit not in dead]
        rank_in_class: dict[int, int] = {}
        seen: dict[int, int] = {}
        for unit in ranked:
            rank_in_class[unit] = seen[preferred[unit]] = seen.get(preferred[unit], 0) + 1
        return sorted(ranked, key=lambda unit: rank_in_class[unit])


@dataclass
class ActivationAnalysisResult:
    """Result of :func:`activation_analysis`: per layer, and the activation-maximization images."""

    output_names: list[str]
    samples: int  # how many samples were analysed
    data: str  # what they were, e.g. "train" ("" when not said)
    absent_classes: list[str]
    thresholds: Thresholds
    layers: dict[str, LayerActivations]
    activations: dict[str, torch.Tensor] = field(metadata={"json": False})  # layer -> (N, H), the samples'
    maximization: dict[str, torch.Tensor] = field(metadata={"json": False})  # layer -> (U, *input_shape) in [0, 1]
    maximized_units: dict[str, list[int]] = field(default_factory=dict)  # the unit (or class) of each image
    maximized_values: dict[str, list[float]] = field(default_factory=dict)  # what each unit reaches on its image
    top_samples: dict[str, list[list[int]]] = field(default_factory=dict)  # per image: the analysed samples that
    # activate its unit (or class logit) most, best first, indices into the analysed inputs
    examples: dict[str, torch.Tensor] = field(default_factory=dict, metadata={"json": False})  # those samples,
    # (U, E, *input_shape) pixels in [0, 1], for the figures

    def summary(self) -> dict[str, float]:
        """The scalar numbers, flat: for TensorBoard scalars and the rows of a study."""
        numbers = {}
        for layer, stats in self.layers.items():
            numbers[f"{layer}/dead_fraction"] = stats.dead_fraction
            numbers[f"{layer}/components_90"] = stats.components_90
            numbers[f"{layer}/components_99"] = stats.components_99
            numbers[f"{layer}/redundant_pairs"] = stats.redundant_pairs
            numbers[f"{layer}/compressed_width"] = stats.compression.smallest_k
        return numbers


def activation_analysis(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    output_names: Sequence[str] | None = None,
    *,
    layers: Sequence[str] | None = None,
    maximize: int = 0,
    prior: ImagePrior | None = None,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor] = (0.0, 1.0),
    thresholds: Thresholds = Thresholds(),
    chunk_size: int = 4096,
    data: str = "",
) -> ActivationAnalysisResult:
    """Run every activation analysis on ``(inputs, targets)``.

    Args:
        layers: hidden layers (probe names) to analyse; default all.
        maximize: units per layer to visualize by activation maximization (selective and strongly
            active ones, or the most variable for regression); 0 (the default) turns it off.
            Classification models also get one image per class logit. Needs image inputs and a ``prior``.
        prior: the image prior for activation maximization (``ImagePrior.fit(train_images)``).
        input_range: the model-input values of black and white pixels (normalization moves them).
        thresholds: what counts as dead, redundant, compressible, and which classes a unit's
            description names; the report states them.
        data: what the samples are (e.g. ``"train"``), for the report and the result.
    """
    if len(inputs) < 2:
        raise ZooError(
            f"the activation analysis needs at least two samples (variances, correlations); got {len(inputs)}"
        )
    require_one_model(model, "the activation analysis")
    check_maximization(model, maximize, prior)
    probes = select_probes(model, layers)
    names = output_names_for(model, inputs, targets, output_names, "the activation analysis")
    described = f"{len(inputs):,} {data} samples".replace("  ", " ")
    with model.analysis_mode(), torch.no_grad():
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype  # the model's precision (it may train in 64-true or bf16-true)
        inputs = inputs.to(device, dtype)
        targets = targets.to(device, dtype) if targets.is_floating_point() else targets.to(device)
        activations = collect_activations(model, inputs, probes, chunk_size)
        results = {}
        for layer, values in activations.items():
            mean, eigenvalues, eigenvectors = principal_components(values)
            axes = eigenvectors.to(values.dtype)  # projected in the model's precision
            tolerance = thresholds.compression_tolerance
            compressed = compression(
                model, inputs, targets, layer, mean, axes, chunk_size=chunk_size, tolerance=tolerance
            )
            results[layer] = describe_layer(
                layer,
                values,
                targets,
                task=model.task,
                num_outputs=model.num_outputs,
                eigenvalues=eigenvalues,
                compressed=compressed,
                output_names=names,
                thresholds=thresholds,
                described=described,
            )
    return finish_analysis(
        model,
        results,
        activations,
        inputs,
        targets,
        output_names=names,
        maximize=maximize,
        prior=prior,
        input_range=input_range,
        thresholds=thresholds,
        data=data,
    )


def describe_layer(
    layer: str,
    values: torch.Tensor,
    targets: torch.Tensor,
    *,
    task: str,
    num_outputs: int,
    eigenvalues: torch.Tensor,
    compressed: Compression,
    output_names: Sequence[str],
    thresholds: Thresholds,
    described: str,
) -> LayerActivations:
    """One layer's numbers and report from its ``(N, H)`` activations, principal variances and compression check."""
    dead = dead_units(values, thresholds.dead_tolerance)
    profile = class_profile(values, targets, num_outputs) if task == "classification" else None
    cumulative = eigenvalues.cumsum(0) / eigenvalues.sum().clamp_min(torch.finfo(eigenvalues.dtype).tiny)
    correlation, redundant = redundancy(values, thresholds.redundancy)
    result = LayerActivations(
        units=values.shape[1],
        never_active=dead.never_active,
        constant=dead.constant,
        firing_rate=(values > 0).float().mean(0),
        class_profile=profile,
        selectivity=selectivity(profile) if profile is not None and values.min() >= 0 else None,
        correlation=correlation,
        redundant_pairs=redundant,
        explained_variance=cumulative,
        components_90=_components_for(cumulative, 0.90),
        components_99=_components_for(cumulative, 0.99),
        compression=compressed,
    )
    signed = bool(profile is not None and values.min() < 0)
    result.report = unit_report(layer, result, output_names, thresholds=thresholds, data=described, signed=signed)
    return result


def finish_analysis(
    model: Analysable,
    results: dict[str, LayerActivations],
    activations: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    output_names: list[str],
    maximize: int,
    prior: ImagePrior | None,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor],
    thresholds: Thresholds,
    data: str,
) -> ActivationAnalysisResult:
    """The result of one model from its layers' numbers: activation maximization added where asked."""
    absent = []
    if model.task == "classification":
        absent = (torch.bincount(targets.cpu(), minlength=model.num_outputs) == 0).nonzero().flatten().tolist()
    maximization, units, reached, top, examples = {}, {}, {}, {}, {}
    if maximize:
        maximization, units = _maximize_layers(
            model, results, activations, inputs, targets, maximize, prior, input_range
        )
        reached, top = _what_maximizes(model, maximization, units, activations, inputs, input_range)
        low, high = (torch.as_tensor(bound, device=inputs.device) for bound in input_range)
        pixels = ((inputs - low) / (high - low)).clamp(0, 1)
        examples = {layer: pixels[torch.as_tensor(rows, device=inputs.device)] for layer, rows in top.items()}
    absent_names = [output_names[k] for k in absent]
    return ActivationAnalysisResult(
        output_names, len(inputs), data, absent_names, thresholds, results, activations, maximization, units, reached,
        top, examples,
    )  # fmt: skip


def check_maximization(model: Analysable, maximize: int, prior: ImagePrior | None) -> None:
    """Refuse activation maximization that could not draw anything, before any work is done."""
    if not maximize:
        return
    if maximize < 0:
        raise ZooError(f"maximize must be 0 or more, got {maximize}")
    if len(model.input_shape) < 2:
        raise ZooError(
            f"maximize={maximize}: activation maximization draws input images, and this model's inputs are "
            f"vectors of shape {tuple(model.input_shape)}; use maximize=0"
        )
    if prior is None:
        raise ZooError(
            f"maximize={maximize} needs an image prior: pass prior=ImagePrior.fit(train_images) "
            "(training images scaled to [0, 1]), or use maximize=0"
        )


def _what_maximizes(
    model: Analysable,
    maximization: dict[str, torch.Tensor],
    units: dict[str, list[int]],
    activations: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor],
    examples: int = 5,
) -> tuple[dict[str, list[float]], dict[str, list[list[int]]]]:
    """Each maximized unit's value on its image, and the analysed samples that drive it hardest."""
    device = inputs.device
    low, high = (torch.as_tensor(bound, device=device) for bound in input_range)
    reached, top = {}, {}
    with model.analysis_mode(), torch.no_grad():
        logits = torch.cat([model(chunk) for chunk in inputs.split(4096)])
        for layer, images in maximization.items():
            chosen = torch.as_tensor(units[layer], device=device)
            outputs, hidden = model.forward_with_hidden((low + images.to(device) * (high - low)).to(inputs.dtype))
            values = outputs if layer == OUTPUT else hidden[layer]
            reached[layer] = values[torch.arange(len(chosen), device=device), chosen].tolist()
            responses = (logits if layer == OUTPUT else activations[layer])[:, chosen]  # (N, U)
            top[layer] = responses.topk(min(examples, len(inputs)), dim=0).indices.t().tolist()
    return reached, top


def _maximize_layers(
    model: Analysable,
    results: dict[str, LayerActivations],
    activations: dict[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    maximize: int,
    prior: ImagePrior,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
    """Activation-maximization images of the chosen units of every layer, and of every class logit."""
    device = inputs.device
    classification = model.task == "classification"
    low, high = (torch.as_tensor(bound, device=device) for bound in input_range)
    # hidden units start from the mean image of the class they prefer (the prior's mean without
    # classes): a ReLU unit silent at its start would have no gradient to follow
    if classification:
        starts = class_profile(((inputs - low) / (high - low)).flatten(1), targets, model.num_outputs).t()
    else:
        starts = prior.center[None].to(device)
    with model.analysis_mode(), torch.no_grad():
        _, at_start = model.forward_with_hidden(low + starts.view(-1, *model.input_shape) * (high - low))
    groups, units = [], {}
    for layer, result in results.items():
        if classification:
            preferred = result.class_profile.nan_to_num(-torch.inf).argmax(1)
        else:
            preferred = torch.zeros(result.units, dtype=torch.long, device=device)
        responsive = at_start[layer][preferred, torch.arange(result.units, device=device)] != 0
        units[layer] = _units_to_show(result, activations[layer], maximize, responsive)
        start = starts[preferred[units[layer]]].view(-1, *model.input_shape)
        groups.append(Maximized(layer, units[layer], start))
    if classification:
        units[OUTPUT] = list(range(model.num_outputs))
        groups.append(Maximized(OUTPUT, units[OUTPUT]))
    images = maximize_together(model, groups, prior, input_range)  # one optimization for every layer
    return {group.layer: image for group, image in zip(groups, images)}, units


def collect_activations(
    model: Analysable, inputs: torch.Tensor, layers: Sequence[str], chunk_size: int = 4096
) -> dict[str, torch.Tensor]:
    """Hidden activations of all samples, ``{layer: (N, H)}``, in chunks."""
    parts: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for chunk in inputs.split(chunk_size):
        hidden = model.forward_with_hidden(chunk)[1]
        for layer in layers:
            parts[layer].append(hidden[layer])
    return {layer: torch.cat(values) for layer, values in parts.items()}


def class_profile(activations: torch.Tensor, targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``(H, K)`` mean activation of every unit over the samples of every class (NaN for absent classes)."""
    membership = F.one_hot(targets, num_classes).to(activations.dtype)
    counts = membership.sum(0)
    profile = (activations.t() @ membership) / counts.clamp_min(1)
    return profile.masked_fill(counts == 0, float("nan"))


def selectivity(profile: torch.Tensor) -> torch.Tensor:
    """Class selectivity (μ_max − μ_rest)/(μ_max + μ_rest) (Morcos et al. 2018); 0 where undefined.

    μ_max is the largest class mean, μ_rest the mean of the other class means, over the classes
    present (NaN columns are left out). The index is meant for non-negative activations (ReLU
    family), where it lies in [0, 1].
    """
    present = ~profile.isnan().all(0)
    profile = profile[:, present]
    top = profile.max(1).values
    rest = (profile.sum(1) - top) / max(profile.shape[1] - 1, 1)
    denominator = top + rest
    defined = denominator.abs() > 1e-12
    return torch.where(defined, (top - rest) / torch.where(defined, denominator, 1.0), 0.0)


def redundancy(activations: torch.Tensor, threshold: float = 0.95) -> tuple[torch.Tensor, int]:
    """Pearson correlation between units, and the number of pairs with |r| ≥ threshold."""
    correlation = torch.corrcoef(activations.t().double()).nan_to_num(0.0).float()  # constant units: r = 0
    rows, cols = torch.triu_indices(len(correlation), len(correlation), offset=1, device=correlation.device)
    return correlation, int((correlation[rows, cols].abs() >= threshold).sum())


def principal_components(activations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, variances along the principal axes (descending), and the axes as columns."""
    mean = activations.mean(0)
    centered = (activations - mean).double()
    covariance = centered.t() @ centered / max(len(activations) - 1, 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
    return mean, eigenvalues.flip(0).clamp_min(0).float(), eigenvectors.flip(1).float()


def compression(
    model: Analysable,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    layer: str,
    mean: torch.Tensor,
    axes: torch.Tensor,
    *,
    chunk_size: int = 4096,
    tolerance: float = 0.005,
) -> Compression:
    """Replace ``layer`` by its projection on its top-k principal axes: the smallest k that keeps the metric.

    ``smallest_k`` is the smallest k whose metric is within ``tolerance`` (0.005 = half an
    accuracy point) of the unedited network's; ``k`` and ``score`` list every k tried, ascending.
    A layer of at most ``EXHAUSTIVE_WIDTH`` units has every k from 1 to its width scored, so the
    answer is exact whatever the metric does. A wider layer is bisected over 1..width, after
    scoring k = width (the layer itself, up to rounding): about log2(width) + 1 scores instead of
    width. Bisection assumes the metric does not fall as k grows (each component added brings the
    projection closer to the layer); where a curve breaks that, the k found keeps the metric and
    the k below it does not, but a smaller k elsewhere might.
    """
    width = axes.shape[1]
    classification = model.task == "classification"

    def score(edit=None) -> float:
        outputs = torch.cat([model.forward_with_hidden(chunk, edit)[0] for chunk in inputs.split(chunk_size)])
        if classification:
            return multiclass_accuracy(outputs, targets, model.num_outputs, average="micro").item()
        return r2_score(outputs, targets, multioutput="uniform_average").item()

    def projection(basis: torch.Tensor):
        return lambda name, values: (values - mean) @ basis @ basis.t() + mean if name == layer else values

    full = score()
    scores: dict[int, float] = {}

    def keeps(k: int) -> bool:
        if k not in scores:
            scores[k] = score(projection(axes[:, :k]))
        return scores[k] >= full - tolerance

    smallest = _smallest_k(keeps, width)
    ks = sorted(scores)
    return Compression("accuracy" if classification else "r2", full, ks, [scores[k] for k in ks], smallest, tolerance)


def _smallest_k(keeps: Callable[[int], bool], width: int) -> int:
    """The smallest k in 1..width that ``keeps`` the metric, else ``width``: every k, or bisection (see compression)."""
    if width <= EXHAUSTIVE_WIDTH:
        kept = [k for k in range(1, width + 1) if keeps(k)]  # every k scored: the whole curve, for its figure
        return kept[0] if kept else width
    if not keeps(width):
        return width
    fails, smallest = 0, width  # invariant: ``smallest`` keeps the metric, ``fails`` does not (0 components: assumed)
    while smallest - fails > 1:
        middle = (fails + smallest) // 2
        fails, smallest = (fails, middle) if keeps(middle) else (middle, smallest)
    return smallest


@dataclass
class ImagePrior:
    """A Gaussian model of the training images: their mean and top principal components.

    Activation maximization searches images ``center + Σ_j c_j σ_j v_j`` and penalizes
    ``Σ_j c_j²``, the prior's negative log-density: images stay near what the data looks
    like, so the strokes a unit wants appear instead of adversarial noise (the role
    Lucid's decorrelated parametrization plays for photographs).
    """

    center: torch.Tensor  # (D,) mean image, pixels in [0, 1]
    axes: torch.Tensor  # (D, k) principal directions
    scales: torch.Tensor  # (k,) standard deviation along each

    @classmethod
    def fit(cls, images: torch.Tensor, components: int = 60) -> ImagePrior:
        """Fit on images with pixels in [0, 1] (any shape ``(N, ...)``)."""
        flat = images.flatten(1).double()
        center = flat.mean(0)
        covariance = (flat - center).t() @ (flat - center) / max(len(flat) - 1, 1)
        variances, axes = torch.linalg.eigh(covariance)
        keep = min(components, flat.shape[1])
        return cls(center.float(), axes.flip(1)[:, :keep].float(), variances.flip(0)[:keep].clamp_min(0).sqrt().float())

    def to(self, device: torch.device | str) -> ImagePrior:
        return ImagePrior(self.center.to(device), self.axes.to(device), self.scales.to(device))


def activation_maximization(
    model: Analysable,
    layer: str,
    units: Sequence[int],
    prior: ImagePrior,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor] = (0.0, 1.0),
    *,
    steps: int = 300,
    lr: float = 0.1,
    weight: float = 0.05,
    jitter: int = 2,
    seed: int = 0,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Images that maximize ``units`` of ``layer`` (class logits for ``layer="output"``), all at once.

    One batched optimization, image b for unit ``units[b]``: maximize the unit minus
    ``weight`` × the prior penalty, under random jitter (shifts of up to ``jitter`` pixels,
    as in Lucid), starting from ``start`` images (default: the prior's mean) projected on the
    prior, plus fixed-seed noise. Returns ``(U, *input_shape)``
    images with pixels in [0, 1]; ``input_range`` maps them to the model's inputs.
    """
    (images,) = maximize_together(
        model,
        [Maximized(layer, units, start)],
        prior,
        input_range,
        steps=steps,
        lr=lr,
        weight=weight,
        jitter=jitter,
        seed=seed,
    )
    return images


@dataclass(frozen=True)
class Maximized:
    """Units of one layer to maximize (``"output"``: class logits), from ``start`` (default: the prior's mean)."""

    layer: str
    units: Sequence[int]
    start: torch.Tensor | None = None


def maximize_together(
    model: Analysable,
    groups: Sequence[Maximized],
    prior: ImagePrior,
    input_range: tuple[float | torch.Tensor, float | torch.Tensor] = (0.0, 1.0),
    *,
    steps: int = 300,
    lr: float = 0.1,
    weight: float = 0.05,
    jitter: int = 2,
    seed: int = 0,
) -> list[torch.Tensor]:
    """:func:`activation_maximization` of several layers' units as one optimization, a forward a step for all.

    Each group gets what it would get alone (its own noise and jitter drawn from ``seed``; Adam
    and the loss act on every image by itself), up to the rounding of batched products: a
    network's layers cost one optimization instead of one each.
    """
    if not groups:
        return []
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    prior = prior.to(device)
    low, high = (torch.as_tensor(bound, dtype=torch.float32, device=device) for bound in input_range)
    generators = [torch.Generator().manual_seed(seed) for _ in groups]
    starts = []
    for group, generator in zip(groups, generators):
        noise = (torch.randn(len(group.units), len(prior.scales), generator=generator) * 0.1).to(device)
        offset = (
            torch.zeros_like(noise)
            if group.start is None
            else ((group.start.flatten(1).to(device, torch.float32) - prior.center) @ prior.axes) / prior.scales
        )
        starts.append(offset + noise)
    coefficients = torch.cat(starts).requires_grad_()
    optimizer = torch.optim.Adam([coefficients], lr=lr)
    sizes = [len(group.units) for group in groups]
    chosen = [torch.as_tensor(list(group.units), dtype=torch.long, device=device) for group in groups]
    own_rows = [torch.arange(size, device=device) for size in sizes]  # a group's images, within its rows
    ranges = _row_ranges(sizes)

    def pixels() -> torch.Tensor:
        return (
            (prior.center + (coefficients * prior.scales) @ prior.axes.t())
            .clamp(0, 1)
            .view(len(coefficients), *model.input_shape)
        )

    with model.analysis_mode(), torch.inference_mode(False), torch.enable_grad():
        for _ in range(steps):
            shifts = [
                torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist() for generator in generators
            ]
            images = (low + pixels() * (high - low)).split(sizes)
            shifted = torch.cat([part.roll(shift, dims=(-2, -1)) for part, shift in zip(images, shifts)])
            outputs, hidden = model.forward_with_hidden(shifted.to(dtype))  # the images stay in float32
            objective = torch.cat(
                [
                    (outputs if group.layer == OUTPUT else hidden[group.layer])[rows][own, units]
                    for group, rows, own, units in zip(groups, ranges, own_rows, chosen)
                ]
            )
            loss = (weight * coefficients.square().sum(1) - objective).sum()
            # the images' gradient alone: the weights' would double the backward and land in the model's .grad
            (coefficients.grad,) = torch.autograd.grad(loss, [coefficients])
            optimizer.step()
        return list(pixels().detach().split(sizes))


def _row_ranges(sizes: Sequence[int]) -> list[slice]:
    ends = torch.tensor(list(sizes)).cumsum(0).tolist()
    return [slice(end - size, end) for size, end in zip(sizes, ends)]


def unit_report(
    layer: str,
    result: LayerActivations,
    output_names: Sequence[str],
    *,
    thresholds: Thresholds = Thresholds(),
    data: str = "the analysed samples",
    signed: bool = False,
    top: int = 5,
) -> str:
    """A few plain sentences about a layer, generated from its numbers and the thresholds that made them."""
    dead = result.dead
    breakdown = (
        f": {len(result.never_active)} exactly 0 on every sample, {len(result.constant)} (nearly) constant otherwise"
    )
    dead_by = f"variance at most {thresholds.dead_tolerance:g} of the layer's largest"
    judged = f"{layer}: {result.units} units, judged on {data}; "
    if dead:
        judged += f"{len(dead)} dead ({len(dead) / result.units:.1%}){breakdown} ({dead_by})."
    else:
        judged += f"none dead (none with a {dead_by})."
    pairs = f"{result.redundant_pairs} unit pair{'s are' if result.redundant_pairs != 1 else ' is'} redundant"
    lines = [
        judged,
        f"{result.components_90} principal components hold 90% of the variance and {result.components_99} hold 99%; "
        f"{pairs} (|r| ≥ {thresholds.redundancy:g}).",
    ]
    compressed = result.compression
    within = f"within {compressed.tolerance:g} of the full network's {compressed.metric} ({compressed.full:.4f})"
    if compressed.smallest_k >= result.units:
        verdict = f"The layer cannot be compressed: only all {result.units} components keep the metric {within}"
    else:
        top_k = f"{compressed.smallest_k} component{'s' * (compressed.smallest_k != 1)}"
        verdict = f"Projected on its top {top_k} the layer keeps the metric {within}"
    lines.append(f"{verdict}; k tried: {_tried(compressed.k)}.")
    if signed:
        lines.append(
            "Class selectivity is defined for non-negative activations; this layer's go below 0, so no unit is ranked."
        )
    elif result.selectivity is not None:
        lines += _selective_lines(result, output_names, thresholds, top)
    return "\n".join(lines)


def _selective_lines(
    result: LayerActivations, output_names: Sequence[str], thresholds: Thresholds, top: int
) -> list[str]:
    """The report's most class-selective units: only those at or above the selectivity threshold, or that none is."""
    selective = [unit for unit in result.selective_units if result.selectivity[unit] >= thresholds.selectivity]
    if not selective:
        return [f"No unit is class-selective (selectivity ≥ {thresholds.selectivity:g})."]
    lines = [
        f"Most class-selective units (selectivity ≥ {thresholds.selectivity:g}), the best of each class in turn "
        f"(selectivity × preferred-class activation; classes named hold ≥ {thresholds.class_share:.0%} of the "
        "unit's mean activation over classes):"
    ]
    for unit in selective[:top]:
        profile = result.class_profile[unit].nan_to_num(0)
        share = profile / profile.sum().clamp_min(1e-12)
        named = [k for k in share.argsort(descending=True).tolist() if share[k] >= thresholds.class_share]
        classes = ", ".join(f"{output_names[k]} ({share[k]:.0%})" for k in named)
        lines.append(
            f"  unit {unit}: {classes or f'no class holds ≥ {thresholds.class_share:.0%}'}; "
            f"selectivity {result.selectivity[unit]:.2f}, fires on {result.firing_rate[unit]:.1%} of samples"
        )
    return lines


def _tried(ks: Sequence[int]) -> str:
    """The k values of a compression check in words: every k up to the width, or those a bisection tried."""
    if len(ks) > 2 and list(ks) == list(range(1, len(ks) + 1)):
        return f"every k from 1 to {len(ks)}"
    return ", ".join(map(str, ks)) + (" (bisection)" if len(ks) > 2 else "")


def _components_for(cumulative: torch.Tensor, share: float) -> int:
    return int((cumulative < share - 1e-6).sum()) + 1 if len(cumulative) else 0


def _units_to_show(
    result: LayerActivations, activations: torch.Tensor, count: int, responsive: torch.Tensor
) -> list[int]:
    """The units the report ranks first (``selective_units``); for regression, the most variable.

    Only live units that respond at the optimization's starting image qualify (a ReLU unit
    silent there has no gradient to follow).
    """
    alive = responsive.cpu().clone()
    alive[result.dead] = False
    ranked = [unit for unit in result.selective_units if alive[unit]]
    if ranked:
        return ranked[:count]
    variance = activations.var(0).cpu().masked_fill(~alive, -torch.inf)
    return variance.argsort(descending=True)[: min(count, int(alive.sum()))].tolist()
