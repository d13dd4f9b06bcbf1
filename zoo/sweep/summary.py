"""A study's summary and figures, made from its rows alone (``python scripts/sweep.py report <folder>``).

Rows are grouped into configurations (a config with its overrides); each configuration's
seeds give mean, std, min, max and n of every number. ``summary.md`` holds the metric
table and, side by side, the internal-structure numbers of each configuration; the
figures are the metric against nonzero parameters and against training time (mean ±
std, one line per family), the distribution of chosen analysis numbers across each
configuration's seeds, and chosen numbers over the training epochs.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from zoo.analyses import declared_number, list_analyses
from zoo.figures import render, save_png
from zoo.io import write_text
from zoo.sweep.spec import Figures, settings_text

MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def structure() -> dict[str, str]:
    """The network-level numbers compared side by side, as the analyses declare them; ``*`` ones averaged."""
    return {
        f"{analysis.name}.{number.key}": number.label
        for analysis in list_analyses()
        for number in analysis.numbers
        if number.compared
    }


def write_summary(output: str | Path, rows: list[dict[str, Any]], figures: Figures | None = None) -> list[Path]:
    """``summary.md`` and the figures of a study, from its rows; returns the files written."""
    output, figures = Path(output), figures or Figures()
    if not rows:
        return [write_text(output / "summary.md", "# Sweep summary\n\nNo trial has finished yet.\n")]
    groups = configurations(rows)
    written = [write_text(output / "summary.md", summary_markdown(groups))]
    metric = rows[0]["metric"]
    for column, label, log in (
        ("params_nonzero", "nonzero parameters", True),
        ("train_seconds", "training time (s)", False),
    ):
        figure = _metric_against(groups, column, label, metric, log)
        written.append(save_png(output / f"{metric}_vs_{column.split('_')[0]}.png", render(figure)))
    for key in figures.distributions or _default_distributions(rows):
        if any(_number(row.get(key)) is not None for row in rows):
            path = output / f"distribution_{_file_name(key)}.png"
            written.append(save_png(path, render(_distribution(groups, key))))
    for key in figures.over_epochs or _default_over_epochs(rows):
        if any(key in row.get("history", {}) for row in rows):
            path = output / f"over_epochs_{_file_name(key)}.png"
            written.append(save_png(path, render(_over_epochs(groups, key))))
    return written


def configurations(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by configuration (family, config and overrides), in order of first appearance."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        settings = settings_text(json.loads(row.get("overrides") or "{}"))  # as the console names the trial
        name = " ".join(part for part in (row["family"], settings) if part)
        groups.setdefault(f"{name} ({Path(str(row['config'])).stem})", []).append(row)
    return groups


def spread(values: Sequence[Any], digits: int = 4) -> str:
    """``mean ± std (min–max, n=N)``; with one value, ``value (n=1)``: never a made-up ± 0."""
    numbers = [number for number in map(_number, values) if number is not None]
    if not numbers:
        return "–"
    if len(numbers) == 1:
        return f"{numbers[0]:.{digits}f} (n=1)"
    mean, std = statistics.fmean(numbers), statistics.stdev(numbers)
    return (
        f"{mean:.{digits}f} ± {std:.{digits}f} ({min(numbers):.{digits}f}–{max(numbers):.{digits}f}, n={len(numbers)})"
    )


def summary_markdown(groups: dict[str, list[dict[str, Any]]]) -> str:
    first = next(iter(groups.values()))[0]
    metric = first["metric"]
    lines = [
        "# Sweep summary",
        "",
        f"Per configuration, over its seeds: mean ± std (min–max, n). Test and validation {metric} of the best",
        "checkpoint; training and evaluation wall time. Best test metric first.",
        "",
        f"| configuration | nonzero params | test {metric} | val {metric} | train s | eval s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    order = sorted(groups, key=lambda name: -_mean(row.get(f"test_{metric}") for row in groups[name]))
    for name in order:
        group = groups[name]
        test, val = spread([r.get(f"test_{metric}") for r in group]), spread([r.get(f"val_{metric}") for r in group])
        train, evaluation = (
            spread([r["train_seconds"] for r in group], 1),
            spread([r["eval_seconds"] for r in group], 2),
        )
        lines.append(
            f"| {name} | {int(float(group[0]['params_nonzero'])):,} | {test} | {val} | {train} | {evaluation} |"
        )
    structure = _structure_table(groups, order)
    if structure:
        lines += ["", "## Internal structure, side by side", "", *structure, ""]
        lines += [
            "A number *mean over layers* averages a model's probe points; a ColumNet's are its columns' layers,",
            "each analysed on its own, so its widths and component counts are a column's, not the merged layer's.",
        ]
    return "\n".join(lines) + "\n"


def _structure_table(groups: dict[str, list[dict[str, Any]]], order: list[str]) -> list[str]:
    rows = []
    for pattern, label in structure().items():
        cells = [spread([_aggregate(row, pattern) for row in groups[name]], 3) for name in order]
        if any(cell != "–" for cell in cells):
            rows.append(f"| {label} | " + " | ".join(cells) + " |")
    if not rows:
        return []
    header = "| number | " + " | ".join(order) + " |"
    return [header, "| --- |" + " ---: |" * len(order), *rows]


def _aggregate(row: dict[str, Any], pattern: str) -> float | None:
    """The row's value of ``pattern``; a ``*`` pattern averages every matching per-layer number."""
    if "*" not in pattern:
        return _number(row.get(pattern))
    expression = re.compile(re.escape(pattern).replace(r"\*", r"[^.]+"))
    values = [_number(value) for key, value in row.items() if expression.fullmatch(key) and "/" in key]
    values = [value for value in values if value is not None]
    return statistics.fmean(values) if values else None


def _metric_against(groups: dict, column: str, label: str, metric: str, log: bool) -> Figure:
    """Test metric (mean ± std over seeds) against a column, one line per family."""
    figure = Figure(figsize=(7, 4.8), layout="constrained")
    axes = figure.add_subplot()
    families: dict[str, list[tuple[float, float, float, float]]] = {}
    for group in groups.values():
        xs = [_number(row.get(column)) for row in group]
        ys = [_number(row.get(f"test_{metric}")) for row in group]
        xs, ys = [x for x in xs if x is not None], [y for y in ys if y is not None]
        if xs and ys:
            point = (statistics.fmean(xs), statistics.fmean(ys), _std(xs), _std(ys))
            families.setdefault(group[0]["family"], []).append(point)
    for index, (family, points) in enumerate(sorted(families.items())):
        points.sort()
        x, y, x_err, y_err = (np.array(values) for values in zip(*points))
        axes.errorbar(
            x, y, xerr=x_err, yerr=y_err, marker=MARKERS[index % len(MARKERS)], capsize=3, label=family, linestyle="-"
        )
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(label)
    axes.set_ylabel(f"test {metric} (mean ± std over seeds)")
    axes.set_title(f"Test {metric} against {label}")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


def _distribution(groups: dict, key: str) -> Figure:
    """How a number is distributed over each configuration's seeds: a histogram, or points when few."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    axes = figure.add_subplot()
    values = {
        name: [v for v in (_number(row.get(key)) for row in group) if v is not None] for name, group in groups.items()
    }
    values = {name: numbers for name, numbers in values.items() if numbers}
    if max(len(numbers) for numbers in values.values()) >= 20:
        for name, numbers in values.items():
            axes.hist(numbers, bins=min(30, max(5, len(numbers) // 4)), alpha=0.6, label=f"{name} (n={len(numbers)})")
        axes.set_xlabel(key)
        axes.set_ylabel("seeds")
        declared = declared_number(key)
        band = declared[1].band if declared else None
        if band is not None:
            axes.axvspan(-band, band, color="grey", alpha=0.15, label=f"within ±{band}")
        axes.legend(fontsize=8)
    else:
        rng = np.random.default_rng(0)
        for index, numbers in enumerate(values.values()):
            jitter = rng.uniform(-0.15, 0.15, len(numbers))
            axes.scatter(index + jitter, numbers, alpha=0.7, s=18)
            axes.errorbar(index + 0.3, statistics.fmean(numbers), yerr=_std(numbers), fmt="_k", capsize=4)
        axes.set_xticks(range(len(values)), [_short(name) for name in values], rotation=20, ha="right", fontsize=8)
        axes.set_ylabel(key)
    axes.set_title(f"{key} across seeds", fontsize=10)
    axes.grid(alpha=0.3)
    return figure


def _over_epochs(groups: dict, key: str) -> Figure:
    """A number at every analysed epoch (−1 is the initialized network): mean ± std over seeds."""
    figure = Figure(figsize=(7.5, 4.8), layout="constrained")
    axes = figure.add_subplot()
    for index, (name, group) in enumerate(groups.items()):
        series = [row["history"] for row in group if key in row.get("history", {})]
        if not series:
            continue
        epochs = series[0]["epoch"]
        curves = np.array([history[key] for history in series if history["epoch"] == epochs], dtype=float)
        mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
        axes.plot(epochs, mean, marker=MARKERS[index % len(MARKERS)], label=f"{_short(name)} (n={len(curves)})")
        axes.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch (−1: before training)")
    axes.set_ylabel(key.rsplit(".", 1)[-1])
    axes.set_title(f"{key} over training, mean ± std over seeds", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _default_distributions(rows: list[dict[str, Any]]) -> list[str]:
    """The columns whose declared number is drawn as a distribution over seeds."""
    return sorted(key for key in {key for row in rows for key in row} if _drawn(key, "distribution"))


def _default_over_epochs(rows: list[dict[str, Any]]) -> list[str]:
    """The history numbers declared to be drawn over epochs."""
    return sorted(key for key in {key for row in rows for key in row.get("history", {})} if _drawn(key, "over_epochs"))


def _drawn(column: str, figure: str) -> bool:
    declared = declared_number(column)
    return declared is not None and figure in declared[1].drawn


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def _mean(values) -> float:
    numbers = [number for number in map(_number, values) if number is not None]
    return statistics.fmean(numbers) if numbers else float("-inf")


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _short(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _file_name(key: str) -> str:
    """A column as a file name, without its analysis's name: ``pair_x0_x1_orthogonality``."""
    declared = declared_number(key)
    short = key.split(".", 1)[1] if declared else key
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", short)
