"""The how-small study's report: ``how_small.csv``, ``how_small.md`` and ``how_small.png``, from its records alone.

A row per network × seed × stage (trained, pruned, compressed within each tolerance; SparseNet
with a fixed topology and with SET at a compressed FCNet's size). Per network and stage: nonzero
parameters and the test metric over seeds; paired differences (each compressed stage against
its trained network, SET against the fixed topology, SparseNet against the FCNet of its size).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from zoo.figures import MARKERS, counts_axis, render, save_png, wrapped
from zoo.io import write_text
from zoo.surgery.study import FIXED, SET, stage_name
from zoo.sweep.summary import METRIC_NAMES, error_bars, paired_difference, paired_row, paired_section, spread

COLUMNS = [
    "network", "architecture", "seed", "stage", "tolerance", "available", "params_nonzero", "val", "test",
    "max_delta_judged", "max_delta_test", "removed", "k", "density", "target_params", "note", "trial",
]  # fmt: skip


def write_report(
    study: Path, records: list[dict[str, Any]], sparse: list[dict[str, Any]], tolerances: list[float]
) -> list[Path]:
    """Write the CSV, the markdown and the figure into ``study``; returns their paths."""
    metric = records[0]["metric"]
    rows = table_rows(records, sparse, tolerances, metric)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["network"], row["stage"]), []).append(row)
    csv_path = write_text(study / "how_small.csv", _csv(rows, metric))
    figure = save_png(study / "how_small.png", render(_figure(groups, metric)))
    text = _markdown(study, records, groups, tolerances, metric, figure.name)
    return [csv_path, write_text(study / "how_small.md", text), figure]


def table_rows(
    records: list[dict[str, Any]], sparse: list[dict[str, Any]], tolerances: list[float], metric: str
) -> list[dict[str, Any]]:
    """One row per network × seed × stage; a stage that could not be made is a row marked not available."""
    rows = []
    for record in records:
        stages = ["trained", "pruned", *(stage_name(tolerance) for tolerance in tolerances)]
        for stage, tolerance in zip(stages, [None, None, *tolerances]):
            found = record["stages"].get(stage) or {"available": False, "note": "not computed"}
            pruned = found if stage == "pruned" else {}
            rows.append(
                {
                    "network": record["network"],
                    "architecture": record["architecture"],
                    "seed": record["seed"],
                    "stage": stage,
                    "tolerance": tolerance,
                    "available": found["available"],
                    "params_nonzero": found.get("params_nonzero"),
                    "val": found.get("val"),
                    "test": found.get("test"),
                    "max_delta_judged": pruned.get("max_delta_judged"),
                    "max_delta_test": pruned.get("max_delta_test"),
                    "removed": json.dumps(pruned["removed"]) if pruned else None,
                    "k": json.dumps(found["k"]) if "k" in found else None,
                    "note": found.get("note"),
                    "trial": record["trial"],
                }
            )
    for row in sparse:
        rows.append(
            {
                "network": row["network"],
                "architecture": "SparseNet",
                "seed": int(row["seed"]),
                "stage": f"matched {row['matched']:g}",
                "tolerance": row["matched"],
                "available": True,
                "params_nonzero": int(row["params_nonzero"]),
                "val": float(row[f"val_{metric}"]),
                "test": float(row[f"test_{metric}"]),
                "density": row["density"],
                "target_params": row["target_params"],
                "trial": row["trial"],
            }
        )
    return rows


def _csv(rows: list[dict[str, Any]], metric: str) -> str:
    named = {"val": f"val_{metric}", "test": f"test_{metric}"}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=[named.get(c, c) for c in COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows({named.get(key, key): value for key, value in row.items()} for row in rows)
    return buffer.getvalue()


def tolerance_words(tolerance: float, metric: str) -> str:
    """``1 point`` (of accuracy), else the number in the metric's own unit."""
    if metric == "acc":
        points = tolerance * 100
        return f"{points:g} point{'s' if points > 1 else ''}"
    return f"{tolerance:g} {METRIC_NAMES.get(metric, metric)}"


def stage_words(stage: str, metric: str, fc: str | None = None) -> str:
    """A stage as the report says it: ``compressed within 1 point``, ``as large as FCNet compressed within 1 point``."""
    if stage.startswith("compressed "):
        return f"compressed within {tolerance_words(float(stage.split()[1]), metric)}"
    if stage.startswith("matched "):
        return f"as large as {fc or 'the FCNet'} {stage_words(stage_name(float(stage.split()[1])), metric)}"
    return stage


def _numbers(rows: list[dict[str, Any]], key: str) -> list[float]:
    return [float(row[key]) for row in rows if row["available"] and row.get(key) is not None]


def _by_seed(rows: list[dict[str, Any]]) -> dict[int, float]:
    return {int(row["seed"]): float(row["test"]) for row in rows if row["available"] and row["test"] is not None}


def _fc_network(records: list[dict[str, Any]]) -> str | None:
    return next((record["network"] for record in records if record["architecture"] == "FCNet"), None)


def _markdown(
    study: Path,
    records: list[dict[str, Any]],
    groups: dict[tuple[str, str], list[dict[str, Any]]],
    tolerances: list[float],
    metric: str,
    figure: str,
) -> str:
    name = METRIC_NAMES.get(metric, metric)
    fc = _fc_network(records)
    judged = max(record["judged_samples"] for record in records)
    lines = [
        f"# How small can the networks of {study.name} get?",
        "",
        f"Each finished trial's best checkpoint, pruned exactly (units constant on the {judged:,} training samples",
        "removed, their constants folded into the next layer's bias), then compressed layer by layer to the smallest",
        f"k the compression analysis finds within a tolerance of the pruned network's validation {name} (chosen on",
        f"the validation split; test {name} only reported). Tolerances: "
        + ", ".join(tolerance_words(tolerance, metric) for tolerance in tolerances)
        + ".",
    ]
    if any(network in (FIXED, SET) for network, _ in groups):
        lines += [
            "SparseNet with the FCNet's hidden widths, activation and dropout, trained as `configs/sparsenet.yaml`",
            "trains it (its optimizer; above 30% density its masked backend, the faster there) on the same data,",
            "epochs and seeds, at the density whose nonzero parameter count is nearest the compressed FCNets' mean",
            "at a tolerance (found by counting built networks); once with its fixed random topology, once with SET",
            "(zeta 0.3, rewiring after every epoch until 3/4 of the epochs).",
        ]
    lines += [
        "",
        "Per network and stage, over seeds: mean ± std (min–max, n).",
        "",
        f"| network | stage | nonzero parameters | test {name} | val {name} |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for (network, stage), rows in groups.items():
        words = stage_words(stage, metric, fc)
        if rows[0].get("density") is not None:
            words += f" (density {rows[0]['density']:.4g})"
        missing = [row for row in rows if not row["available"]]
        if len(missing) == len(rows):
            note = missing[0]["note"] or "not available"
            lines.append(f"| {network} | {words} | not available ({note}) | – | – |")
            continue
        counted = spread(_numbers(rows, "params_nonzero"), 0)
        test, val = spread(_numbers(rows, "test")), spread(_numbers(rows, "val"))
        lines.append(f"| {network} | {words} | {counted} | {test} | {val} |")
    lines += _paired(groups, records, tolerances, metric, fc)
    lines += _pruning(records)
    lines += _ks(records, tolerances, metric)
    lines += [
        "",
        f"![test {name} against nonzero parameters]({figure})",
        "",
        "A marker per network and stage at its mean over seeds; bars: the min–max over seeds of both numbers.",
        "",
    ]
    return "\n".join(lines)


def _paired(
    groups: dict[tuple[str, str], list[dict[str, Any]]],
    records: list[dict[str, Any]],
    tolerances: list[float],
    metric: str,
    fc: str | None,
) -> list[str]:
    """Compressed against trained, SET against fixed, SparseNet against the FCNet of its size: seed by seed."""
    comparisons: list[tuple[str, tuple[str, str], tuple[str, str]]] = []
    for network in dict.fromkeys(record["network"] for record in records):
        for stage in ["pruned", *(stage_name(tolerance) for tolerance in tolerances)]:
            words = stage_words(stage, metric)
            comparisons.append((f"{network}: {words} − trained", (network, stage), (network, "trained")))
    for tolerance in tolerances:
        matched = f"matched {tolerance:g}"
        if (SET, matched) not in groups:
            continue
        size = stage_words(matched, metric, fc)
        comparisons.append((f"SET − fixed topology, {size}", (SET, matched), (FIXED, matched)))
        for sparse in (FIXED, SET):
            compressed = (fc, stage_name(tolerance))
            comparisons.append((f"{sparse} − {fc} {stage_words(compressed[1], metric)}", (sparse, matched), compressed))
    name, lines = METRIC_NAMES.get(metric, metric), []
    for label, first, second in comparisons:
        if first not in groups or second not in groups:
            continue
        found = paired_difference(_by_seed(groups[first]), _by_seed(groups[second]))
        if found is not None:
            lines.append(paired_row(label, found))
    return paired_section(lines, metric=name, minus="The first minus the second", column="comparison")


def _pruning(records: list[dict[str, Any]]) -> list[str]:
    lines = [
        "",
        "## Pruning",
        "",
        "Units removed per layer (mean, min–max over seeds); the largest |Δ output| of the pruned network against",
        "the trained one on the judged (training) samples, where it must be float rounding, and on the test split,",
        "where a unit silent in training may fire; how many removed units vary on the test split (all seeds).",
        "",
        "| network | units removed per layer | max \\|Δ\\| judged | max \\|Δ\\| test | removed units varying on test |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for network in dict.fromkeys(record["network"] for record in records):
        pruned = [record["stages"]["pruned"] for record in records if record["network"] == network]
        removed = []
        for layer in pruned[0]["removed"]:
            counts = [stage["removed"][layer] for stage in pruned]
            removed.append(f"{layer} {statistics.fmean(counts):.1f} ({min(counts)}–{max(counts)})")
        judged = max(stage["max_delta_judged"] for stage in pruned)
        test = max(stage["max_delta_test"] for stage in pruned)
        varying = sum(units for stage in pruned for units, _ in stage["varied_test"].values())
        lines.append(f"| {network} | {', '.join(removed)} | {judged:.2g} | {test:.2g} | {varying} |")
    return lines


def _ks(records: list[dict[str, Any]], tolerances: list[float], metric: str) -> list[str]:
    """Which layers each seed compressed, to which k (a layer absent was left whole)."""
    lines = []
    for record in records:
        cells = []
        for tolerance in tolerances:
            stage = record["stages"].get(stage_name(tolerance), {})
            ks = stage.get("k") if stage.get("available") else None
            cells.append("–" if ks is None else ", ".join(f"{layer}={k}" for layer, k in ks.items()) or "whole")
        lines.append(f"| {record['network']} | {record['seed']} | " + " | ".join(cells) + " |")
    header = " | ".join(f"within {tolerance_words(tolerance, metric)}" for tolerance in tolerances)
    return [
        "",
        "## k per layer",
        "",
        "The components each compressed layer keeps (chosen on the validation split); `whole`: no layer saves",
        "weights at a k that keeps the metric; `–`: not available.",
        "",
        f"| network | seed | {header} |",
        "| --- | ---: |" + " --- |" * len(tolerances),
        *lines,
    ]


def _figure(groups: dict[tuple[str, str], list[dict[str, Any]]], metric: str) -> Figure:
    """Test metric against nonzero parameters (log): a marker per network × stage, min–max bars over seeds."""
    name = METRIC_NAMES.get(metric, metric)
    figure = Figure(figsize=(9, 7.5), layout="constrained")
    axes = figure.add_subplot()
    networks = list(dict.fromkeys(network for network, _ in groups))
    kinds = list(dict.fromkeys(stage.split()[-1] for _, stage in groups))  # a tolerance's SparseNet: its marker
    fc = next((network for network in networks if network not in (FIXED, SET)), None)
    lows, highs, xs_drawn = [], [], []
    for (network, stage), rows in groups.items():
        xs, ys = _numbers(rows, "params_nonzero"), _numbers(rows, "test")
        if not xs or not ys:
            continue
        xs_drawn += xs
        x, y = statistics.fmean(xs), statistics.fmean(ys)
        lows.append(min(ys))
        highs.append(max(ys))
        bars = (
            error_bars(np.array([x]), np.array([min(xs)]), np.array([max(xs)])),
            error_bars(np.array([y]), np.array([min(ys)]), np.array([max(ys)])),
        )
        axes.errorbar(
            [x],
            [y],
            xerr=bars[0],
            yerr=bars[1],
            marker=MARKERS[kinds.index(stage.split()[-1]) % len(MARKERS)],
            color=f"C{networks.index(network)}",
            capsize=3,
            linestyle="none",
            label=f"{network}, {stage_words(stage, metric, fc)} (n={len(ys)})",
        )
    axes.set_xscale("log")
    if xs_drawn:
        counts_axis(axes.xaxis, min(xs_drawn), max(xs_drawn))
    if lows:
        low, high = min(lows), max(highs)
        margin = max(0.1 * (high - low), 0.002)
        top = min(high + margin, 1.0) if metric == "acc" else high + margin
        axes.set_ylim(max(low - margin, 0.0) if metric == "acc" else low - margin, top)
    axes.set_xlabel("nonzero parameters (count, log scale)")
    axes.set_ylabel(f"test {name}")
    axes.set_title(wrapped(f"Test {name} against nonzero parameters: trained, pruned, compressed, and SparseNet"))
    axes.grid(alpha=0.3, which="both")
    for columns in (2, 1):  # two columns where the labels allow: long network names take the figure's width
        legend = figure.legend(
            loc="outside lower center", ncols=columns, fontsize=8, title="mean over seeds; bars: min–max",
            title_fontsize=8,
        )  # fmt: skip
        fits = legend.get_window_extent(FigureCanvasAgg(figure).get_renderer()).width <= 0.98 * figure.bbox.width
        if fits or columns == 1:
            break
        legend.remove()
    return figure
