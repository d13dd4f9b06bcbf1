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
