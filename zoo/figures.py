"""Figures drawn from analysis results: labelled heatmaps and image panels, as RGBA arrays.

Analyses return plain data; these functions draw it with matplotlib's object API
(no pyplot state, safe in any process), and :func:`render` turns a figure into the
array that goes to TensorBoard and to PNG files alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave

from zoo.io import atomic_file


def render(figure: Figure) -> np.ndarray:
    """Draw a figure once into an ``(H, W, 4)`` uint8 RGBA array (for TensorBoard and PNG alike)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def save_png(path: str | Path, image: np.ndarray) -> Path:
    with atomic_file(path) as handle:
        imsave(handle, image, format="png")
    return Path(path)


def heatmap(
    matrix: torch.Tensor,
    title: str,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str = "viridis",
    colorbar: str = "",
    annotate: bool | None = None,
) -> Figure:
    """A labelled heatmap; small matrices also get their values written in the cells."""
    values = matrix.detach().float().cpu()
    rows, cols = values.shape
    figure = Figure(
        figsize=(min(2 + 0.5 * cols, 12), min(1.5 + (0.45 if rows <= 40 else 0.012) * rows, 14)), layout="constrained"
    )
    axes = figure.add_subplot()
    image = axes.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    figure.colorbar(image, ax=axes, label=colorbar)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if col_labels is not None:
        axes.set_xticks(
            range(cols),
            list(col_labels),
            rotation=45 if max(map(len, col_labels)) > 3 else 0,
            ha="right" if max(map(len, col_labels)) > 3 else "center",
        )
    if row_labels is not None and rows <= 40:
        axes.set_yticks(range(rows), list(row_labels))
    if annotate if annotate is not None else rows * cols <= 144:
        for (row, col), value in zip(
            torch.cartesian_prod(torch.arange(rows), torch.arange(cols)).tolist(), values.flatten().tolist()
        ):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # text readable on the cell's own colour
            axes.text(
                col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black"
            )
    return figure


def image_panel(images: torch.Tensor, titles: Sequence[str], title: str, columns: int = 10) -> Figure:
    """Greyscale images (pixels in [0, 1]) side by side, each with its own caption."""
    count = len(images)
    rows = -(-count // columns)
    figure = Figure(figsize=(1.3 * min(count, columns), 1.5 * rows + 0.4), layout="constrained")
    figure.suptitle(title)
    for position, (image, caption) in enumerate(zip(images.detach().float().cpu(), titles)):
        axes = figure.add_subplot(rows, min(count, columns), position + 1)
        axes.imshow(image.reshape(-1, image.shape[-1]).numpy(), cmap="gray", vmin=0, vmax=1)
        axes.set_title(caption, fontsize=8)
        axes.axis("off")
    return figure


def by_preferred_class(profile: torch.Tensor) -> torch.Tensor:
    """Row order grouping ``(H, K)`` rows by their largest column, strongest first within a group."""
    values = profile.nan_to_num(-torch.inf)
    strongest_first = torch.argsort(values.max(1).values, descending=True, stable=True)
    return strongest_first[torch.argsort(values.argmax(1)[strongest_first], stable=True)]


def pixel_map(values: torch.Tensor, title: str, colorbar: str = "", cmap: str = "magma") -> Figure:
    """One value per pixel of an ``(H, W)`` image, square pixels, with a colour bar.

    Laid out by hand rather than by constrained layout, which costs ~0.5 s a figure: SET draws one per epoch.
    """
    figure = Figure(figsize=(5.0, 4.6))
    axes = figure.add_axes((0.03, 0.03, 0.746, 0.81))  # square: 3.73 in a side
    bar = figure.add_axes((0.80, 0.03, 0.035, 0.81))
    image = axes.imshow(values.detach().float().cpu().numpy(), cmap=cmap, interpolation="nearest")
    figure.colorbar(image, cax=bar, label=colorbar)
    figure.suptitle(title, fontsize=10, y=0.98)
    axes.set_xticks([])
    axes.set_yticks([])
    return figure


def degree_histograms(degrees: dict[str, torch.Tensor], title: str, xlabel: str) -> Figure:
    """One histogram of integer degrees per layer, side by side, each titled with its mean ± std."""
    count = len(degrees)
    figure = Figure(figsize=(3.4 * count + 0.6, 3.6))
    figure.subplots_adjust(left=0.6 / (3.4 * count + 0.6) + 0.04, right=0.98, bottom=0.15, top=0.74, wspace=0.3)
    figure.suptitle(title, fontsize=11, y=0.98)
    for position, (name, values) in enumerate(degrees.items(), start=1):
        axes = figure.add_subplot(1, count, position)
        values = values.detach().cpu()
        low, high = int(values.min()), int(values.max())
        step = max(1, -(-(high - low + 1) // 40))  # at most ~40 bars
        edges = torch.arange(low, high + step + 1, step)
        counts = torch.histogram(values.double(), edges.double()).hist
        axes.stairs(counts.numpy(), edges.numpy(), fill=True, color="tab:blue")  # one artist: quick to draw
        floats = values.float()
        spread = float(floats.std()) if len(values) > 1 else 0.0
        axes.set_title(f"{name}\nmean {float(floats.mean()):.1f} ± {spread:.1f}", fontsize=9)
        axes.set_xlabel(xlabel, fontsize=8)
        axes.tick_params(labelsize=8)
        if position == 1:
            axes.set_ylabel("units", fontsize=8)
    return figure
