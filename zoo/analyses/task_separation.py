"""Task separation, declared: its options, numbers, figures and dashboard (the function is ``zoo.analysis``'s)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from matplotlib.figure import Figure

from zoo.analyses.declaration import Analysis, Number, Samples, register_analysis
from zoo.analysis.members import task_separation_of_members
from zoo.analysis.task_separation import ORTHOGONAL, TaskSeparationResult, task_separation
from zoo.errors import ZooError
from zoo.figures import by_preferred_class, heatmap, over_epochs, roles_chart


@dataclass(frozen=True)
class TaskSeparationOptions:
    """threshold: attribution share one output must hold for a neuron to be mono-functional."""

    threshold: float = 0.9

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:  # checked when configured, not after training
            raise ZooError(f"threshold must lie in (0, 1], got {self.threshold}")


def run(
    model: Any, samples: Samples, options: TaskSeparationOptions, *, layers: list[str] | None, cache: dict
) -> TaskSeparationResult:
    return _run(task_separation, model, samples, options, layers=layers)


def run_members(
    model: Any, samples: Samples, options: TaskSeparationOptions, *, layers: list[str] | None, cache: dict
) -> list[TaskSeparationResult]:
    return _run(task_separation_of_members, model, samples, options, layers=layers)


def _run(analysis: Any, model: Any, samples: Samples, options: TaskSeparationOptions, *, layers: list[str] | None):
    """``analysis`` (one model's, or every member's at once) on the samples, with the declared options."""
    return analysis(
        model,
        samples.inputs,
        samples.targets,
        samples.output_names,
        layers=layers,
        threshold=options.threshold,
        data=samples.split,
    )


def figures(result: TaskSeparationResult, *, history: list[dict]) -> dict[str, Figure]:
    """The cosine heatmaps, each layer's attribution shares, the roles, and the pairs over epochs."""
    names = result.output_names
    drawn = {}
    cosines = {
        "interference": (result.interference, "Gradient interference: cosine of the tasks' loss gradients"),
        "orthogonality": (
            result.orthogonality,
            "Output orthogonality: cosine of |a·∂y/∂a| columns (0 = disjoint neurons, 1 = the same)",
        ),
        "signed_orthogonality": (result.signed_orthogonality, "Output orthogonality: cosine of a·∂y/∂a columns"),
    }
    for tag, (matrix, title) in cosines.items():
        signed = tag != "orthogonality"  # the magnitude view cannot go below 0
        drawn[tag] = heatmap(
            matrix,
            title,
            names,
            names,
            xlabel="output",
            ylabel="output",
            signed=signed,
            colorbar="cosine",
            limits=(-1.0, 1.0) if signed else (0.0, 1.0),  # a cosine's own range: colours mean the same everywhere
        )
    for layer, share in result.attribution_share.items():
        is_dead = result.dead.get(layer, torch.zeros(len(share), dtype=torch.bool)).cpu()
        order = by_preferred_class(share)  # neurons grouped by the output they serve most, the dead last
        order = order[torch.argsort(is_dead[order].int(), stable=True)]
        dead = is_dead[order]
        shown = share[order].clone()
        shown[dead] = math.nan  # a dead neuron has no share to show: a blank row, named so
        rows = [f"{unit} (dead)" if is_dead else str(unit) for unit, is_dead in zip(order.tolist(), dead.tolist())]
        drawn[f"attribution/{layer}"] = heatmap(
            shown,
            f"Attribution share, {layer} (neurons grouped by the output they serve most; {_dead_said(dead)})",
            rows,
            names,
            xlabel="output",
            ylabel="neuron",
            signed=False,
            colorbar="share",
            annotate=False,
            limits=(0, 1),
        )
    drawn["roles"] = roles_chart({**result.roles, **result.column_roles}, threshold=result.threshold)
    if len(history) > 1 and result.pairs:  # one output has no pair to follow
        drawn["over_epochs"] = _over_epochs(history)
    return drawn


def _dead_said(dead: torch.Tensor) -> str:
    """How many rows are dead neurons, said in the title: a tick on the blank band names one neuron, not the count."""
    count = int(dead.sum())
    return f"{count} of {len(dead)} dead, blank, last" if count else "none dead"


def describe(result: TaskSeparationResult) -> str:
    """The network-level numbers and each layer's neuron roles, as a table."""
    lines = [
        f"  mean interference   {result.mean_interference:+.3f}  (cosine of task gradients, mean over pairs)",
        f"  conflict fraction   {result.conflict_fraction:.3f}   (task pairs with negative cosine)",
        f"  orthogonal pairs    {result.orthogonal_fraction:.3f}   (|a·∂y/∂a| cosine ≤ {ORTHOGONAL})",
        f"  signed orthogonal   {result.signed_orthogonal_fraction:.3f}   (a·∂y/∂a cosine within ±{ORTHOGONAL})",
    ]
    if result.absent_outputs:
        lines.append(f"  absent from the data: {', '.join(result.absent_outputs)}")
    lines.append(f"\n  {'layer':<24}{'units':>7}{'mono':>8}{'shared':>8}{'dead':>8}{'special.':>10}")
    for layer, roles in {**result.roles, **result.column_roles}.items():
        fractions = f"{roles.mono_fraction:>8.1%}{roles.shared_fraction:>8.1%}{roles.dead_fraction:>8.1%}"
        lines.append(f"  {layer:<24}{roles.units:>7}{fractions}{roles.specialization:>10.3f}")
    return "\n".join(lines)


def _over_epochs(history: list[dict]) -> Figure:
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
    limits = {title: (0.0, 1.0) if key == "orthogonality" else (-1.0, 1.0) for key, title in panels.items()}
    return over_epochs(
        series, epochs, "Output pairs over training (cosines; one point per analysed epoch)", limits=limits
    )


SEEDS, EPOCHS = ("distribution",), ("over_epochs",)  # the study figures a number gets by default
COSINE, SHARE = (-1.0, 1.0), (0.0, 1.0)
TASK_SEPARATION = register_analysis(
    Analysis(
        name="task_separation",
        title="task separation",
        run=run,
        run_members=run_members,
        options=TaskSeparationOptions,
        numbers=(
            Number(
                "mean_interference",
                "mean interference (cosine of task gradients)",
                compared=True,
                bounds=COSINE,
                over_epochs=True,
                drawn=("distribution", "over_epochs"),
            ),
            Number(
                "conflict_fraction",
                "conflicting task pairs (share)",
                "lower",
                compared=True,
                over_epochs=True,
                bounds=SHARE,
            ),
            Number(
                "orthogonal_fraction",
                f"pairs orthogonal: magnitude cosine ≤ {ORTHOGONAL} (share)",
                compared=True,
                drawn=SEEDS,
                bounds=SHARE,
            ),
            Number(
                "signed_orthogonal_fraction",
                f"pairs orthogonal: signed cosine within ±{ORTHOGONAL} (share)",
                compared=True,
                drawn=SEEDS,
                bounds=SHARE,
            ),
            Number(
                "pair/*/interference",
                "cosine of the pair's task gradients",
                over_epochs=True,
                drawn=EPOCHS,
                bounds=COSINE,
            ),
            Number(
                "pair/*/orthogonality",
                "cosine of the pair's |a·∂y/∂a| columns",
                over_epochs=True,
                drawn=SEEDS,
                band=ORTHOGONAL,
                bounds=SHARE,
            ),
            Number(
                "pair/*/signed_orthogonality",
                "cosine of the pair's a·∂y/∂a columns",
                over_epochs=True,
                drawn=SEEDS,
                band=ORTHOGONAL,
                bounds=COSINE,
            ),
            Number("*/specialization", "specialization, 0–1 (mean over layers)", compared=True, bounds=SHARE),
            Number("*/mono_fraction", "mono-functional neurons (share, mean over layers)", compared=True, bounds=SHARE),
            Number("*/shared_fraction", "shared neurons (share, mean over layers)", bounds=SHARE),
            Number("*/dead_fraction", "dead neurons (share, mean over layers)", "lower", compared=True, bounds=SHARE),
        ),
        figures=figures,
        describe=describe,
        layout={
            "gradient interference": r"(mean_interference|conflict_fraction)",
            "orthogonal output pairs": r"(signed_)?orthogonal_fraction",
            "specialization per layer": r".*/specialization",
            "dead neurons per layer": r".*/dead_fraction",
        },
    )
)
