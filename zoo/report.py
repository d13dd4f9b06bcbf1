"""The one place where analysis results become files, figures and TensorBoard entries.

Analyses return plain data (tensors, numbers, strings). This module turns it
into JSON (written atomically), matplotlib heatmaps with labelled axes and a
colour scale, and TensorBoard scalars, images and text.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave


def to_jsonable(value: Any) -> Any:
    """Tensors become (nested) lists, dataclasses dicts; NaN and infinities become null (JSON has none)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: to_jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().tolist())
    if isinstance(value, dict):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_atomically(path: str | Path, write) -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, then rename it into place.

    A crash at any moment leaves either the old file or the new one, never half of one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def write_json(path: str | Path, data: Any) -> Path:
    text = json.dumps(to_jsonable(data), indent=1, allow_nan=False)
    return write_atomically(path, lambda handle: handle.write(text.encode()))


def render(figure: Figure) -> np.ndarray:
    """Draw a figure once into an ``(H, W, 4)`` uint8 RGBA array (for TensorBoard and PNG alike)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def save_png(path: str | Path, image: np.ndarray) -> Path:
    return write_atomically(path, lambda handle: imsave(handle, image, format="png"))


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
    figure = Figure(figsize=(min(2 + 0.5 * cols, 12), min(1.5 + (0.45 if rows <= 40 else 0.012) * rows, 14)), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    figure.colorbar(image, ax=axes, label=colorbar)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if col_labels is not None:
        axes.set_xticks(range(cols), list(col_labels), rotation=45 if max(map(len, col_labels)) > 3 else 0, ha="right" if max(map(len, col_labels)) > 3 else "center")
    if row_labels is not None and rows <= 40:
        axes.set_yticks(range(rows), list(row_labels))
    if annotate if annotate is not None else rows * cols <= 144:
        for (row, col), value in zip(torch.cartesian_prod(torch.arange(rows), torch.arange(cols)).tolist(), values.flatten().tolist()):
            red, green, blue, _ = image.cmap(image.norm(value))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # text readable on the cell's own colour
            axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
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


class RunReport:
    """Where one analysis of one run writes: ``<run dir>/analysis/<name>/`` and the run's loggers."""

    def __init__(self, trainer, name: str) -> None:
        self.trainer, self.name = trainer, name
        self.folder = Path(trainer.log_dir or trainer.default_root_dir) / "analysis" / name
        self.step = trainer.global_step
        self.tensorboard = next((logger.experiment for logger in trainer.loggers if hasattr(logger.experiment, "add_image")), None)

    def scalars(self, values: dict[str, float]) -> None:
        for logger in self.trainer.loggers:
            logger.log_metrics({f"{self.name}/{key}": value for key, value in values.items()}, step=self.step)

    def figure(self, tag: str, figure: Figure, png: str | None = None) -> None:
        """Log a figure as a TensorBoard image and, given a file name, save it as PNG too."""
        if self.tensorboard is None and png is None:
            return  # nowhere to put it: skip the drawing, the costly part
        image = render(figure)
        if self.tensorboard is not None:
            self.tensorboard.add_image(f"{self.name}/{tag}", image[..., :3], global_step=self.step, dataformats="HWC")
        if png is not None:
            save_png(self.folder / png, image)

    def text(self, tag: str, text: str) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_text(f"{self.name}/{tag}", text, global_step=self.step)

    def histogram(self, tag: str, values: torch.Tensor) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_histogram(f"{self.name}/{tag}", values.detach().flatten().cpu(), global_step=self.step)

    def json(self, filename: str, data: Any) -> Path:
        return write_json(self.folder / filename, data)
