"""Figures drawn from analysis results, as RGBA arrays for TensorBoard and PNG files alike.

Analyses return plain data; these functions draw it with matplotlib's object API (no
pyplot state, safe in any process). Layout rules every figure follows, so that it reads
at TensorBoard's card size (about 600 pixels wide): at least 6.4 inches wide at 100 dpi,
fonts of 9 points or more, titles wrapped rather than clipped, colour scales fitted to
the data, and a diverging map centred on 0 for signed quantities.
"""

from __future__ import annotations

import io
import textwrap
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.patches import Rectangle
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from zoo.io import write_bytes

MIN_WIDTH = 6.4  # inches, at 100 dpi: TensorBoard's image card shows ~600 pixels without shrinking text
TITLE_WIDTH = 60  # characters per title line
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
CHAR_WIDTH = 0.6  # a character's mean width in DejaVu Sans, in ems: how wide a line of text will be before drawing
LINE = 1.25  # a line's height, in ems


def render(figure: Figure) -> np.ndarray:
    """Draw a figure once into an ``(H, W, 4)`` uint8 RGBA array (for TensorBoard and PNG alike)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def png(image: np.ndarray) -> bytes:
    """An ``(H, W, 4)`` image as PNG bytes: encoded once, for a file and TensorBoard alike."""
    buffer = io.BytesIO()
    imsave(buffer, image, format="png")
    return buffer.getvalue()


def save_png(path: str | Path, image: np.ndarray) -> Path:
    return write_bytes(path, png(image))


def wrapped(title: str, width: int = TITLE_WIDTH) -> str:
    return "\n".join(textwrap.wrap(title, width)) or title


def counts_axis(axis, low: float, high: float) -> None:
    """A log axis of counts labelled as people read them (850k, 1.2M): within one decade, six evenly spaced
    ticks (a log axis's own would label one or two); over more, its decades and their 2× and 5× ticks."""
    axis.set_major_locator(MaxNLocator(6) if high < 10 * low else LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: short_count(value)))
    axis.set_minor_formatter(NullFormatter())


def short_count(value: float) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{unit}"
    return f"{value:.3g}"


def noted(figure: Figure, note: str) -> Figure:
    """``figure`` with ``note`` (the epoch, the member) closing its title: the suptitle, else its first titled axes."""
    title = next(
        (text for text in figure.texts if figure.get_suptitle() and text.get_text() == figure.get_suptitle()), None
    )
    if title is not None:  # the suptitle's own Text: its font and place kept
        title.set_text(f"{title.get_text()} — {note}")
        _fit_width(title, figure)
        return figure
    titled = next((axes for axes in figure.axes if axes.get_title()), None)
    if titled is not None:
        titled.set_title(f"{titled.get_title()}\n({note})", fontsize=titled.title.get_fontsize())
    else:
        figure.suptitle(note, fontsize=10)
    return figure


def _fit_width(title: Text, figure: Figure, smallest: float = 7.0) -> None:
    """A title the note made wider than its figure (a member's note is long) in a smaller font, down to
    ``smallest`` points, then on two lines: the layout keeps its place, and nothing is cut."""
    room, renderer = 0.98 * figure.bbox.width, FigureCanvasAgg(figure).get_renderer()
    while (width := title.get_window_extent(renderer).width) > room:  # glyphs do not scale exactly: measured again
        if title.get_fontsize() <= smallest:
            title.set_text(title.get_text().replace(" — ", "\n", 1))
            return
        title.set_fontsize(max(smallest, 0.99 * title.get_fontsize() * room / width))


def heatmap(
    matrix: torch.Tensor,
    title: str,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
    *,
    xlabel: str = "",
    ylabel: str = "",
    signed: bool | None = None,
    colorbar: str = "",
    annotate: bool | None = None,
    square: bool = False,
    limits: tuple[float, float] | None = None,
) -> Figure:
    """A labelled heatmap whose colour scale fits the data.

    ``signed`` (default: when the data go below 0) uses a diverging map centred on 0, with
    limits ±max|value|; otherwise a sequential map from the smallest to the largest value.
    ``limits`` fixes the scale instead. Matrices of at most 12 × 12 cells get their values
    written in the cells. NaN cells (undefined, e.g. an absent class) are left blank.
    """
    values = matrix.detach().float().cpu().numpy()
    rows, cols = values.shape
    finite = values[np.isfinite(values)]
    signed = bool(finite.size and finite.min() < 0) if signed is None else signed
    if limits is not None:
        low, high = limits
    elif signed:
        high = float(np.abs(finite).max()) if finite.size else 1.0
        low = -high
    else:
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    if high <= low:
        high = low + 1e-6
    width = max(MIN_WIDTH, min(2.5 + 0.55 * cols, 10))
    height = width if square else max(3.5, min(1.8 + (0.42 if rows <= 30 else 0.01) * rows, 10))
    figure = Figure(figsize=(width, height), layout="constrained")
    axes = figure.add_subplot()
    cmap = "RdBu_r" if signed else "viridis"
    image = axes.imshow(
        values, cmap=cmap, vmin=low, vmax=high, aspect="equal" if square else "auto", interpolation="nearest"
    )
    figure.colorbar(image, ax=axes, label=colorbar, shrink=0.85)
    axes.set_title(wrapped(title), fontsize=11)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    _label_axis(axes.set_xticks, cols, col_labels, rotate=True)
    _label_axis(axes.set_yticks, rows, row_labels, rotate=False)
    if annotate if annotate is not None else rows <= 12 and cols <= 12:
        size = 9 if max(rows, cols) <= 6 else 7.5
        for (row, col), value in np.ndenumerate(values):
            if np.isfinite(value):
                red, green, blue, _ = image.cmap(image.norm(value))
                dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # text readable on the cell's own colour
                colour = "white" if dark else "black"
                note = axes.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=size, color=colour)
                note.set_in_layout(False)  # inside its cell: the layout need not measure it (a third of a draw)
    return figure


def _label_axis(set_ticks, count: int, labels: Sequence[str] | None, rotate: bool) -> None:
    """Every label when there are few; otherwise about 12 of them, at their real positions."""
    if labels is None:
        return
    labels = list(labels)
    positions = list(range(count)) if count <= 30 else np.linspace(0, count - 1, 12).round().astype(int).tolist()
    long = rotate and max(len(label) for label in labels) > 3
    align = ("right" if long else "center") if rotate else "right"  # a row's label ends at its row, never centred on it
    set_ticks(positions, [labels[i] for i in positions], rotation=40 if long else 0, ha=align)


def cluster_order(correlation: torch.Tensor) -> torch.Tensor:
    """Units ordered so that correlated ones sit together (average linkage on 1 − |r|)."""
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if len(correlation) < 3:
        return torch.arange(len(correlation))
    distance = (1 - correlation.abs().double()).clamp_min(0).cpu().numpy()
    np.fill_diagonal(distance, 0)
    distance = (distance + distance.T) / 2
    return torch.as_tensor(leaves_list(linkage(squareform(distance, checks=False), "average")))


def correlation_map(correlation: torch.Tensor, layer: str) -> Figure:
    """The units' correlation matrix, square, units ordered by clustering and labelled with their ids."""
    order = cluster_order(correlation)
    ids = [str(unit) for unit in order.tolist()]
    return heatmap(
        correlation[order][:, order],
        f"Correlation between the units of {layer} (ordered by clustering)",
        ids,
        ids,
        xlabel="unit",
        ylabel="unit",
        signed=True,
        colorbar="Pearson r",
        annotate=False,
        square=True,
        limits=(-1.0, 1.0),
    )


def class_profile_map(profile: torch.Tensor, names: Sequence[str], layer: str) -> Figure:
    """Mean activation per class, units grouped by the class they prefer, labelled with their ids."""
    order = by_preferred_class(profile)
    return heatmap(
        profile[order],
        f"Mean activation per class, {layer} (units grouped by preferred class)",
        [str(unit) for unit in order.tolist()],
        names,
        xlabel="class",
        ylabel="unit",
        colorbar="mean activation",
        annotate=False,
    )


def by_preferred_class(profile: torch.Tensor) -> torch.Tensor:
    """Row order grouping ``(H, K)`` rows by their largest column, strongest first within a group."""
    values = profile.nan_to_num(-torch.inf)
    strongest_first = torch.argsort(values.max(1).values, descending=True, stable=True)
    return strongest_first[torch.argsort(values.argmax(1)[strongest_first], stable=True)]


def unit_gallery(
    generated: torch.Tensor, examples: torch.Tensor, captions: Sequence[str], title: str, *, note: str = ""
) -> Figure:
    """Per unit, a row: the input that maximizes it (framed), then the real samples that activate it most.

    ``generated`` is ``(U, *image)``, ``examples`` ``(U, E, *image)``, pixels in [0, 1]; ``captions`` label the
    rows, ``note`` (under the tiles) says what their words and numbers are. The tiles are laid out as one mosaic
    image in one axes (dozens of small axes take seconds to lay out), placed in inches so that the title, the
    mosaic and the note follow each other with no empty band between them.
    """
    units, shown = len(generated), examples.shape[1]
    tiles = torch.cat([generated.unsqueeze(1), examples], 1).detach().float().cpu()  # (U, 1 + E, *image)
    height, width = tiles.shape[-2:]
    gap = 2
    mosaic = np.ones((units * (height + gap), (shown + 1) * (width + gap) + 3 * gap))
    for row in range(units):
        for column in range(shown + 1):
            left = column * (width + gap) + (3 * gap if column else 0)  # a wider gap after the framed tile
            top = row * (height + gap)
            mosaic[top : top + height, left : left + width] = tiles[row, column].reshape(height, width).numpy()
    inch = 0.95 / (height + gap)  # a tile a little under an inch
    image_width, image_height = mosaic.shape[1] * inch, mosaic.shape[0] * inch
    longest = max((len(line) for caption in captions for line in caption.splitlines()), default=0)
    labels = max(1.0, longest * CHAR_WIDTH * 9 / 72 + 0.25)  # the captions' column, in inches
    figure_width = max(MIN_WIDTH, labels + image_width + 0.15)
    title_lines = wrapped(title, int(figure_width * 72 / (CHAR_WIDTH * 10)) - 24).splitlines()  # room for a note
    note_lines = wrapped(note, int(figure_width * 72 / (CHAR_WIDTH * 9))).splitlines() if note else []
    above = 0.1 + len(title_lines) * 10 * LINE / 72 + 0.12 + 9 * LINE / 72 + 0.06  # title, then the tiles' heading
    below = 0.12 + len(note_lines) * 9 * LINE / 72 + (0.1 if note_lines else 0)
    figure_height = above + image_height + below
    figure = Figure(figsize=(figure_width, figure_height))
    left = labels + (figure_width - labels - image_width - 0.15) / 2
    axes = figure.add_axes(
        (
            left / figure_width,
            below / figure_height,
            image_width / figure_width,
            image_height / figure_height,
        )
    )
    axes.imshow(mosaic, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    axes.axis("off")
    for row, caption in enumerate(captions):
        top = row * (height + gap)
        axes.add_patch(Rectangle((-0.5, top - 0.5), width, height, fill=False, edgecolor="tab:red", linewidth=2))
        axes.text(-width * 0.2, top + height / 2, caption, ha="right", va="center", fontsize=9)
    axes.set_title("maximizing input │ the analysed samples that activate the unit most", fontsize=9, pad=4)
    figure.suptitle("\n".join(title_lines), fontsize=10, y=1 - 0.1 / figure_height, va="top")
    if note_lines:
        figure.text(0.5, 0.1 / figure_height, "\n".join(note_lines), ha="center", va="bottom", fontsize=9)
    return figure


def pca_and_compression(
    explained: torch.Tensor,
    *,
    ks: Sequence[int],
    scores: Sequence[float],
    full: float,
    tolerance: float,
    smallest_k: int,
    metric: str,
    layer: str,
) -> Figure:
    """Two panels, one above the other (to read at a card's width): the variance of the top-k components, the metric.

    Both count components on the same log-2 axis labelled in plain numbers (1, 2, 4, ... 64), over the same range;
    each panel's legend sits under it, off its data.
    """
    figure = Figure(figsize=(MIN_WIDTH, 8.4), layout="constrained")
    top, bottom = figure.subfigures(2, 1, height_ratios=(1, 1.15))
    spectrum, curve = top.subplots(), bottom.subplots()
    shares = explained.detach().cpu().numpy()
    k = np.arange(1, len(shares) + 1)
    spectrum.plot(k, shares, color="tab:blue", marker="." if len(k) <= 64 else None, label="cumulative share")
    for share, style in ((0.9, "--"), (0.99, ":")):
        reached = int(np.searchsorted(shares, share - 1e-6)) + 1
        spectrum.axvline(reached, color="grey", linestyle=style, label=f"{share:.0%} of variance at k = {reached}")
    spectrum.set_xlabel("principal components k")
    spectrum.set_ylabel("share of variance (cumulative)")
    spectrum.set_ylim(0, 1.02)  # a share: on its whole range
    spectrum.set_title(f"PCA spectrum, {layer}", fontsize=11)
    spectrum.grid(alpha=0.3)
    curve.plot(ks, scores, marker="o", color="tab:green", label=f"{metric} with the layer projected on k")
    curve.axhline(full, color="black", linewidth=1, label=f"full network {full:.4f}")
    curve.axhspan(full - tolerance, full, color="tab:green", alpha=0.12, label=f"within {tolerance:g} of it")
    curve.axvline(smallest_k, color="tab:red", linestyle="--", label=f"smallest k keeping it: {smallest_k}")
    curve.set_xlabel("components kept k")
    curve.set_ylabel(metric)
    curve.set_title(f"Compression check, {layer}", fontsize=11)
    curve.grid(alpha=0.3)
    high = max(len(shares), max(ks, default=1))
    for axes, panel in ((spectrum, top), (curve, bottom)):
        components_axis(axes)
        axes.set_xlim(0.85, high * 1.15)
        panel.legend(*axes.get_legend_handles_labels(), loc="outside lower center", ncols=2, fontsize=9)
    return figure


def components_axis(axes) -> None:
    """``axes``' x axis as counts on a log-2 scale, its ticks powers of two written as numbers (1, 2, 4 ... 512)."""
    axes.set_xscale("log", base=2)
    axis = axes.xaxis
    axis.set_major_locator(LogLocator(base=2, numticks=12))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}" if value >= 1 else f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def roles_chart(roles: dict, *, threshold: float) -> Figure:
    """Neuron roles as stacked bars per layer, above each layer's distribution of largest shares."""
    figure = Figure(figsize=(MIN_WIDTH, 7.4), layout="constrained")
    bars, histogram = figure.subplots(2, 1)
    layers = list(roles)
    bottom = np.zeros(len(layers))
    for role, colour in (("mono", "tab:green"), ("shared", "tab:blue"), ("dead", "tab:grey")):
        heights = np.array([getattr(roles[layer], f"{role}_fraction") for layer in layers])
        bars.bar(layers, heights, bottom=bottom, color=colour, label=role)
        bottom += heights
    bars.set_ylabel("share of the layer's neurons")
    bars.set_ylim(0, 1)
    bars.set_title(f"Neuron roles (mono-functional: one output ≥ {threshold:.0%})", fontsize=11)
    bars.legend(fontsize=9)
    bars.tick_params(axis="x", rotation=30 if len(layers) > 3 else 0)
    for layer in layers:
        shares = roles[layer].largest_share.detach().float().cpu().numpy()
        if shares.size:
            histogram.hist(shares, bins=20, range=(0, 1), histtype="step", linewidth=1.5, label=layer)
    histogram.axvline(threshold, color="tab:red", linestyle="--", label=f"threshold {threshold:g}")
    histogram.set_xlabel("largest share of a neuron's attribution (one output)")
    histogram.set_ylabel("live neurons")
    histogram.set_title("How specialized are the neurons?", fontsize=11)
    histogram.legend(fontsize=8)
    return figure


def over_epochs(
    series: dict[str, dict[str, list[float]]],
    epochs: Sequence[int],
    title: str,
    *,
    limits: dict[str, tuple[float, float]] | None = None,
) -> Figure:
    """Panels of numbers at every analysed epoch, with markers and no smoothing (−1: the initialized network).

    ``series`` maps a panel's title to its lines; panels stack one above the other, sharing the
    epoch axis, so that each reads at a card's width. With more than 8 lines a panel shows their
    mean and their range instead. ``limits`` fixes a panel's y range (a cosine's, say) by its title.
    """
    panels = len(series)
    figure = Figure(figsize=(MIN_WIDTH, 1.2 + 2.6 * panels), layout="constrained")
    figure.suptitle(wrapped(title, 70), fontsize=11)
    grid = np.atleast_1d(figure.subplots(panels, 1, sharex=True))
    for position, (axes, (panel, lines)) in enumerate(zip(grid, series.items())):
        if len(lines) > 8:
            values = np.array(list(lines.values()), dtype=float)
            axes.plot(epochs, np.nanmean(values, 0), marker="o", label=f"mean of {len(lines)} pairs")
            axes.fill_between(epochs, np.nanmin(values, 0), np.nanmax(values, 0), alpha=0.2, label="range")
        else:
            for index, (name, values) in enumerate(lines.items()):
                axes.plot(epochs, values, marker=MARKERS[index % len(MARKERS)], label=name)
        axes.axhline(0, color="grey", linewidth=0.8)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        if panel in (limits or {}):
            low, high = limits[panel]
            axes.set_ylim(low - 0.05 * (high - low), high + 0.05 * (high - low))
        if position == panels - 1:
            axes.set_xlabel("epoch (−1: before training)")
        axes.set_title(panel, fontsize=10)
        axes.grid(alpha=0.3)
        if position == 0:
            axes.legend(fontsize=7)
    return figure


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
        for axis in (axes.xaxis, axes.yaxis):  # degrees and unit counts are whole numbers: no tick at 1.5
            axis.set_major_locator(MaxNLocator(integer=True))
        if position == 1:
            axes.set_ylabel("units", fontsize=8)
    return figure
