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
from scipy import stats

from zoo.analyses import declared_number, list_analyses
from zoo.figures import counts_axis, render, save_png, wrapped
from zoo.hparams import write_study_experiment
from zoo.io import write_text
from zoo.sweep.spec import Figures, rounded, settings_text

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
COLOURS = tuple(
    f"tab:{name}" for name in ("blue", "orange", "green", "red", "purple", "brown", "pink", "olive", "cyan", "grey")
)


def structure() -> dict[str, str]:
    """The network-level numbers compared side by side, as the analyses declare them; ``*`` ones averaged."""
    return {
        f"{analysis.name}.{number.key}": number.label
        for analysis in list_analyses()
        for number in analysis.numbers
        if number.compared
    }


def write_summary(
    output: str | Path,
    rows: list[dict[str, Any]],
    figures: Figures | None = None,
    *,
    failed: dict[str, str] | None = None,
) -> list[Path]:
    """``summary.md`` and the figures of a study, from its rows; returns the files written (summary.md first).

    ``failed``: each trial that failed (and has not finished since) with its message, listed at the end: a
    configuration whose every trial failed has no row, and would otherwise be missing without a word.
    """
    output, figures = Path(output), figures or Figures()
    listed = _failed_markdown(failed or {})
    if not rows:
        return [write_text(output / "summary.md", "# Sweep summary\n\nNo trial has finished yet.\n" + listed)]
    groups = configurations(rows)
    order = ordered(groups)
    drawn: list[tuple[Path, str]] = []
    metric = rows[0]["metric"]
    for column, axis, log in (
        ("params_nonzero", "nonzero parameters (count, log scale)", True),
        ("train_seconds", "training time (s)", False),
    ):
        figure = _metric_against(groups, order, column, axis, metric, log)
        drawn.append((save_png(output / f"{metric}_vs_{column.split('_')[0]}.png", render(figure)), axis))
    for key in figures.distributions or _default_distributions(rows):
        if any(_number(row.get(key)) is not None for row in rows):
            path = output / f"distribution_{_file_name(key)}.png"
            drawn.append((save_png(path, render(_distribution(groups, order, key))), f"{label(key)}, across seeds"))
    for key in figures.over_epochs or _default_over_epochs(rows):
        if any(key in row.get("history", {}) for row in rows):
            path = output / f"over_epochs_{_file_name(key)}.png"
            drawn.append((save_png(path, render(_over_epochs(groups, order, key))), f"{label(key)} over training"))
    if (output / "runs").is_dir():  # the HParams dashboard's columns, for every trial at once
        write_study_experiment(output / "runs", rows, studied(rows))
    text = summary_markdown(groups) + listed + _figures_markdown(drawn, metric)
    return [write_text(output / "summary.md", text), *(path for path, _ in drawn)]


def _failed_markdown(failed: dict[str, str]) -> str:
    if not failed:
        return ""
    lines = ["", f"## Trials that failed ({len(failed)}: no rows above)", ""]
    lines += [f"- `{key}`: {' '.join(message.split())}" for key, message in failed.items()]
    return "\n".join(lines) + "\n"


def studied(rows: list[dict[str, Any]]) -> list:
    """The analyses whose numbers the rows hold."""
    keys = {key.partition(".")[0] for row in rows for key in row if "." in key}
    return [analysis for analysis in list_analyses() if analysis.name in keys]


def ordered(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The configurations in the summary's order, everywhere: best mean test metric first."""
    metric = next(iter(groups.values()))[0]["metric"]
    return sorted(groups, key=lambda name: -_mean(row.get(f"test_{metric}") for row in groups[name]))


def _figures_markdown(drawn: list[tuple[Path, str]], metric: str) -> str:
    lines = ["", "## Figures", ""]
    lines += [
        "Configurations in the table's order. Against size and time: a marker is a configuration's mean test",
        f"{metric}, its bars the min–max over its seeds (a 95% bootstrap CI of the mean from 5 seeds on); points are",
        "joined only within a family whose configurations differ in one numeric setting. Across seeds: a dot per",
        "seed, the diamond the mean, its bar as above; a number with a known range (a cosine, a share) is drawn on",
        "that range.",
        "",
    ]
    for path, caption in drawn:
        lines += [f"![{caption}]({path.name})", ""]
    return "\n".join(lines)


def configurations(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Rows by configuration (family, config and overrides), in order of first appearance."""

    def name(row: dict[str, Any], *, exact: bool) -> str:
        settings = settings_text(json.loads(row.get("overrides") or "{}"), exact=exact)  # as the console says it
        return f"{' '.join(part for part in (row['family'], settings) if part)} ({Path(str(row['config'])).stem})"

    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(name(row, exact=True), []).append(row)
    shown = {key: name(group[0], exact=False) for key, group in groups.items()}
    unclear = {text for text in shown.values() if list(shown.values()).count(text) > 1}  # rounding made two one
    return {key if shown[key] in unclear else shown[key]: group for key, group in groups.items()}


def per_run(group: list[dict[str, Any]], key: str) -> list[Any]:
    """``key`` once per run of a configuration: a batch of seeds' members share their run's wall time,
    one measurement, which counted once per member would read as n agreeing ones (± 0.0)."""
    return list({row.get("run_dir") or index: row[key] for index, row in enumerate(group)}.values())


def spread(values: Sequence[Any], digits: int = 4) -> str:
    """``mean ± std (min–max, n=N)``; with one value, ``value (n=1)``: never a made-up ± 0."""
    numbers = [number for number in map(_number, values) if number is not None]
    if not numbers:
        return "–"
    shown = f",.{digits}f"  # thousands separated: parameter counts are read, not parsed
    if len(numbers) == 1:
        return f"{numbers[0]:{shown}} (n=1)"
    mean, std = statistics.fmean(numbers), statistics.stdev(numbers)
    return f"{mean:{shown}} ± {std:{shown}} ({min(numbers):{shown}}–{max(numbers):{shown}}, n={len(numbers)})"


def summary_markdown(groups: dict[str, list[dict[str, Any]]]) -> str:
    first = next(iter(groups.values()))[0]
    metric = first["metric"]
    lines = [
        "# Sweep summary",
        "",
        f"Per configuration, over its seeds: mean ± std (min–max, n). Test and validation {metric} of the best",
        "checkpoint; training and evaluation wall time, over its runs (a batch of seeds trains as one run:",
        "one time for all its members). Best test metric first.",
        "",
        *_settings(groups),
        f"| configuration | nonzero params | test {metric} | val {metric} | train s | eval s |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    order = ordered(groups)
    for name in order:
        group = groups[name]
        test, val = spread([r.get(f"test_{metric}") for r in group]), spread([r.get(f"val_{metric}") for r in group])
        train, evaluation = spread(per_run(group, "train_seconds"), 1), spread(per_run(group, "eval_seconds"), 2)
        lines.append(
            f"| {name} | {int(float(group[0]['params_nonzero'])):,} | {test} | {val} | {train} | {evaluation} |"
        )
    lines += _paired_markdown(groups, order, metric)
    structure = _structure_table(groups, order)
    if structure:
        lines += ["", "## Internal structure, side by side", "", *structure, ""]
        lines += [
            "A number *mean over layers* averages a model's probe points; a ColumNet's are its columns' layers,",
            "each analysed on its own, so its widths and component counts are a column's, not the merged layer's.",
        ]
    return "\n".join(lines) + "\n"


def paired_difference(a: dict[int, float], b: dict[int, float]) -> dict[str, float] | None:
    """The mean of a − b over the seeds both ran, with its 95% confidence interval; None below two shared seeds.

    Pairing by seed removes what a seed does to both (initial weights, data order), so the interval is
    ``mean(d) ± t(0.975, n−1) · sd(d) / √n`` with ``d`` the per-seed differences (Student's t, the paired t-test's
    interval); ``p`` is that test's two-sided p-value (NaN when every seed differs alike) and ``wins`` the seeds
    where a is ahead.
    """
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    differences = np.array([a[seed] - b[seed] for seed in seeds])
    mean, n = float(differences.mean()), len(seeds)
    half = float(stats.t.ppf(0.975, n - 1) * differences.std(ddof=1) / math.sqrt(n))
    p = float(stats.ttest_1samp(differences, 0.0).pvalue) if differences.std() > 0 else math.nan  # no spread: no test
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": n, "wins": int((differences > 0).sum()), "p": p}


def _paired_markdown(groups: dict[str, list[dict[str, Any]]], order: list[str], metric: str) -> list[str]:
    """The table's first configuration against each other on the seeds both ran: a difference with its interval."""
    by_seed = {name: _by_seed(groups[name], f"test_{metric}") for name in order}
    first, lines = order[0], []
    for name in order[1:]:
        found = paired_difference(by_seed[first], by_seed[name])
        if found is not None:
            lines.append(paired_row(name, found))
    return paired_section(
        lines, metric=metric, minus=f"The table's first configuration ({first}) minus each other one", column="against"
    )


def paired_section(rows: list[str], *, metric: str, minus: str, column: str) -> list[str]:
    """A report's paired-differences section: its heading, what the numbers mean, and the table of ``rows``
    (:func:`paired_row`); none without rows. ``minus`` says which side is subtracted from which."""
    if not rows:
        return []
    return [
        "",
        f"## Paired differences in test {metric}",
        "",
        f"{minus}, seed by seed on the seeds both ran: the mean difference with its 95% confidence interval",
        "(paired t), the seeds where the first is higher, and the paired t-test's two-sided p-value. An interval",
        "that contains 0 means these seeds do not tell the two apart.",
        "",
        f"| {column} | seeds | difference [95% CI] | first higher | p |",
        "| --- | ---: | ---: | ---: | ---: |",
        *rows,
    ]


def paired_row(label: str, found: dict[str, float]) -> str:
    """A paired difference as a table row: label, seeds, mean [95% CI], seeds where the first is higher, p."""
    p = "–" if math.isnan(found["p"]) else format(found["p"], ".2g")
    return (
        f"| {label} | {found['n']} | {found['mean']:+.4f} [{found['low']:+.4f}, {found['high']:+.4f}] "
        f"| {found['wins']} of {found['n']} | {p} |"
    )


def _by_seed(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {int(row["seed"]): value for row in rows if (value := _number(row.get(key))) is not None}


def _settings(groups: dict[str, list[dict[str, Any]]]) -> list[str]:
    """What the numbers are of: the epochs trained, and each analysis's split, samples and options."""
    rows = [row for group in groups.values() for row in group]
    epochs = sorted({int(float(row["epochs"])) for row in rows if _number(row.get("epochs")) is not None})
    lines = [f"Epochs trained: {', '.join(map(str, epochs))}."] if epochs else []
    settings = {row.get("analysis_settings") for row in rows if row.get("analysis_settings")}
    for text in sorted(settings):
        for name, options in json.loads(text).items():
            split, samples = options.pop("split", "?"), options.pop("max_samples", "?")
            extra = ", ".join(f"{key} {value}" for key, value in options.items())
            lines.append(
                f"Analysis {name}: on the {split} split, at most {samples} samples, of the best checkpoint"
                + (f"; {extra}." if extra else ".")
            )
    return [*lines, ""] if lines else []


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


METRIC_NAMES = {"acc": "accuracy", "r2": "R²", "mse": "mean squared error", "loss": "loss"}
BOUNDS = {"acc": (0.0, 1.0)}  # a metric's own range, where it has one (R² has no lower bound)


def label(key: str) -> str:
    """A column as a figure or a table shows it: the declaration's meaning (with its unit), else the key."""
    declared = declared_number(key)
    return declared[1].label_of(key.split(".", 1)[1]) if declared else key


def bounds(key: str) -> tuple[float, float] | None:
    """The range a column's number cannot leave, as its declaration (or the metric) says."""
    declared = declared_number(key)
    return declared[1].bounds if declared else BOUNDS.get(key.split("_", 1)[-1])


def interval(numbers: Sequence[float], limits: tuple[float, float] | None) -> tuple[float, float, str]:
    """The mean's interval: a 95% bootstrap CI from 5 seeds on, below that the seeds' min–max; within ``limits``."""
    values = np.asarray(numbers, dtype=float)
    if len(values) >= 5:
        means = np.random.default_rng(0).choice(values, (2000, len(values))).mean(1)
        low, high, kind = *np.percentile(means, [2.5, 97.5]), "95% bootstrap CI of the mean"
    else:
        low, high, kind = values.min(), values.max(), "min–max over seeds"
    if limits is not None:
        low, high = max(low, limits[0]), min(high, limits[1])
    return float(low), float(high), kind


def error_bars(centre: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Error-bar lengths below and above ``centre``, never negative: equal seeds' mean (fsum) can differ from
    their min and max by an ulp, which matplotlib refuses."""
    return np.clip(np.stack([centre - low, high - centre]), 0.0, None)


def _continuum(names: list[str], groups: dict, xs: dict[str, float]) -> bool:
    """Whether a line between a family's points means something: they differ in one numeric setting only,
    and x (``xs``: each configuration's mean) follows that setting strictly (widths or densities against size)."""
    settings = {name: json.loads(groups[name][0].get("overrides") or "{}") for name in names}
    every = list(settings.values())
    varied = {key for one in every for key in one if len({json.dumps(other.get(key)) for other in every}) > 1}
    if len(varied) != 1 or len(names) < 2:
        return False
    key = next(iter(varied))
    values = [settings[name].get(key) for name in names]
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return False
    along = [xs[name] for name in sorted(names, key=lambda name: settings[name][key])]
    steps = np.diff(along)
    return bool((steps > 0).all() or (steps < 0).all())


def _metric_against(groups: dict, order: list[str], column: str, axis: str, metric: str, log: bool) -> Figure:
    """Test metric against a column: each configuration's mean with its interval over seeds, in its own colour and
    marker, named in the legend by what sets it apart (what all share is said once, under the title).

    A family's points are joined by a grey line only where its configurations differ in one numeric setting.
    """
    names, shared = distinctions(groups, order)
    figure = Figure(figsize=(7, 4.8 + 0.22 * _legend_rows(len(order))), layout="constrained")
    axes = figure.add_subplot()
    families: dict[str, list[str]] = {}
    for name in order:
        families.setdefault(groups[name][0]["family"], []).append(name)
    kinds, index = set(), 0
    for family, members in families.items():
        points = {}
        for name in members:
            xs = [x for x in (_number(row.get(column)) for row in groups[name]) if x is not None]
            ys = [y for y in (_number(row.get(f"test_{metric}")) for row in groups[name]) if y is not None]
            if xs and ys:
                x_low, x_high, _ = interval(xs, None)
                y_low, y_high, kind = interval(ys, bounds(f"test_{metric}"))
                kinds.add(kind)
                points[name] = (statistics.fmean(xs), statistics.fmean(ys), x_low, x_high, y_low, y_high)
        if not points:
            continue
        if _continuum(list(points), groups, {name: point[0] for name, point in points.items()}):
            x, y = zip(*sorted(point[:2] for point in points.values()))
            axes.plot(x, y, color="grey", linewidth=1, zorder=1, label=f"{family}: one setting varied")
        for name in members:
            if name not in points:
                continue
            x, y, x_low, x_high, y_low, y_high = (np.array([value]) for value in points[name])
            axes.errorbar(
                x,
                y,
                xerr=error_bars(x, x_low, x_high),
                yerr=error_bars(y, y_low, y_high),
                marker=MARKERS[index % len(MARKERS)],
                color=COLOURS[index % len(COLOURS)],
                capsize=3,
                markersize=7,
                label=names[name],
                linestyle="none",
                zorder=2,
            )
            index += 1
    drawn = [x for name in order for x in (_number(row.get(column)) for row in groups[name]) if x]
    if log:
        axes.set_xscale("log")
        if drawn:
            counts_axis(axes.xaxis, min(drawn), max(drawn))
    name = METRIC_NAMES.get(metric, metric)
    axes.set_xlabel(axis)
    axes.set_ylabel(f"test {name}")
    axes.set_title(_titled(f"Test {name} against {axis}", shared), fontsize=10)
    axes.grid(alpha=0.3)
    _legend_below(figure, axes, f"marker: a configuration's mean; bars: {' or '.join(sorted(kinds))}")
    return figure


def _distribution(groups: dict, order: list[str], key: str) -> Figure:
    """A number over each configuration's seeds: every seed a dot, the mean and its interval on the same category.

    From 20 seeds on a configuration, histograms instead. The number's known range is the axis's; a
    configuration is named by what sets it apart, wrapped (never cut), what all share said under the title.
    """
    values = {name: [v for v in (_number(row.get(key)) for row in groups[name]) if v is not None] for name in order}
    values = {name: numbers for name, numbers in values.items() if numbers}
    names, shared = distinctions(groups, list(values))
    limits, title = bounds(key), label(key)
    declared = declared_number(key)
    band = declared[1].band if declared else None
    histograms = max(len(numbers) for numbers in values.values()) >= 20
    categories = 1 if histograms else len(values)
    figure = Figure(
        figsize=(
            max(7.5, min(1.2 * categories + 1.5, 14)),
            4.8 + 0.22 * _legend_rows(len(values) + 1 if histograms else 3),
        ),
        layout="constrained",
    )
    axes = figure.add_subplot()
    if histograms:
        for index, (name, numbers) in enumerate(values.items()):
            axes.hist(
                numbers,
                bins=min(30, max(5, len(numbers) // 4)),
                alpha=0.6,
                color=COLOURS[index % len(COLOURS)],
                label=f"{names[name]} (n={len(numbers)})",
            )
        axes.set_xlabel(wrapped(title, 70))
        axes.set_ylabel("seeds")
        if band is not None:
            axes.axvspan(*_band(band, limits), color="grey", alpha=0.15, label=_band_label(band, limits))
        if limits is not None:
            axes.set_xlim(*limits)
        legend_title = None
    else:
        rng = np.random.default_rng(0)
        kinds = set()
        for index, numbers in enumerate(values.values()):
            jitter = rng.uniform(-0.12, 0.12, len(numbers))
            axes.scatter(
                index + jitter, numbers, alpha=0.6, s=18, color="tab:blue", label="one seed" if not index else None
            )
            low, high, kind = interval(numbers, limits)
            kinds.add(kind)
            mean = statistics.fmean(numbers)
            axes.errorbar(
                index,
                mean,
                yerr=error_bars(np.array([mean]), np.array([low]), np.array([high])),
                fmt="D",
                color="black",
                capsize=6,
                markersize=6,
                label="mean and " + " or ".join(sorted(kinds)) if not index else None,
            )
        if band is not None:
            axes.axhspan(*_band(band, limits), color="grey", alpha=0.15, label=_band_label(band, limits))
        width = 28 if len(values) > 6 else max(12, int(6.0 * 72 / (9 * 0.62) / len(values)))
        axes.set_xticks(
            range(len(values)),
            [_wrap_parts(names[name], width) for name in values],
            rotation=30 if len(values) > 6 else 0,
            ha="right" if len(values) > 6 else "center",
            fontsize=9,
        )
        axes.set_xlim(-0.6, len(values) - 0.4)
        axes.set_ylabel(wrapped(title, 45), fontsize=9)
        if limits is not None:
            axes.set_ylim(limits[0] - 0.03 * (limits[1] - limits[0]), limits[1] + 0.03 * (limits[1] - limits[0]))
        legend_title = f"n = seeds per configuration: {', '.join(str(len(v)) for v in values.values())}"
    axes.set_title(_titled(f"{title}, across seeds", shared), fontsize=10)
    axes.grid(alpha=0.3)
    _legend_below(figure, axes, legend_title)
    return figure


def _over_epochs(groups: dict, order: list[str], key: str) -> Figure:
    """A number at every analysed epoch (−1 is the initialized network): the mean over seeds, their min–max band."""
    names, shared = distinctions(groups, order)
    figure = Figure(figsize=(7.5, 4.8 + 0.22 * _legend_rows(len(order))), layout="constrained")
    axes = figure.add_subplot()
    for index, name in enumerate(order):
        series = [row["history"] for row in groups[name] if key in row.get("history", {})]
        if not series:
            continue
        epochs = series[0]["epoch"]
        curves = np.array([history[key] for history in series if history["epoch"] == epochs], dtype=float)
        mean = np.nanmean(curves, 0)
        colour = COLOURS[index % len(COLOURS)]
        marker = MARKERS[index % len(MARKERS)]
        axes.plot(epochs, mean, marker=marker, color=colour, label=f"{names[name]} (n={len(curves)})")
        if len(curves) > 1:
            axes.fill_between(epochs, np.nanmin(curves, 0), np.nanmax(curves, 0), alpha=0.2, color=colour)
    limits = bounds(key)
    if limits is not None:
        axes.set_ylim(limits[0] - 0.03 * (limits[1] - limits[0]), limits[1] + 0.03 * (limits[1] - limits[0]))
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch (−1: before training)")
    axes.set_ylabel(wrapped(label(key), 45), fontsize=9)
    axes.set_title(_titled(f"{label(key)} over training", shared), fontsize=10)
    axes.grid(alpha=0.3)
    _legend_below(figure, axes, "line: mean over seeds; band: min–max")
    return figure


def distinctions(groups: dict[str, list[dict[str, Any]]], order: list[str]) -> tuple[dict[str, str], str]:
    """Each configuration named by what sets it apart (``hidden=[8], activation=relu``), and what they all share
    (``FCNet (multimult)``; empty when nothing is shared). A lone configuration is named in full.

    A family's name (a trial's ``name:``) sets its configurations apart from other families'; a setting names
    a configuration only where it tells apart configurations of one family (SET and "fixed topology" are
    named so, not by their callbacks' JSON).
    """
    settings = {name: _parts(groups[name][0]) for name in order}
    keys = list(dict.fromkeys(key for parts in settings.values() for key in parts))
    shown = _short_keys(keys)

    def differ(names: list[str]) -> list[str]:
        return [key for key in keys if len({json.dumps(settings[name].get(key)) for name in names}) > 1]

    everywhere = differ(list(settings))
    if not everywhere:
        return {name: _described(parts, shown) for name, parts in settings.items()}, ""
    families: dict[str, list[str]] = {}
    for name, parts in settings.items():
        families.setdefault(parts["family"], []).append(name)
    names = {}
    for members in families.values():
        telling = {*differ(members), *(["family"] if "family" in everywhere else [])}
        names.update(
            {name: _described({k: v for k, v in settings[name].items() if k in telling}, shown) for name in members}
        )
    first = next(iter(settings.values()))
    shared = _described({key: first[key] for key in keys if key not in everywhere}, shown)
    return names, f"all: {shared}" if shared else ""


def _parts(row: dict[str, Any]) -> dict[str, Any]:
    """A configuration's settings: family, config file and overrides."""
    overrides = json.loads(row.get("overrides") or "{}")
    return {"family": row["family"], "config": Path(str(row["config"])).stem, **overrides}


def _short_keys(keys: list[str]) -> dict[str, str]:
    """Override keys as people read them: their last part, unless two keys share it (then without ``init_args``)."""
    last = [key.rsplit(".", 1)[-1] for key in keys]
    return {key: tail if last.count(tail) == 1 else key.replace(".init_args.", ".") for key, tail in zip(keys, last)}


def _described(parts: dict[str, Any], shown: dict[str, str]) -> str:
    """``FCNet (multimult), hidden=[8], activation=relu``: the family, its config in brackets (``config iris`` alone),
    the settings."""
    family, config = parts.get("family"), parts.get("config")
    if family and config:
        head = f"{family} ({config})"
    else:
        head = family or (f"config {config}" if config else "")
    settings = [f"{shown[key]}={_value_text(value)}" for key, value in parts.items() if key not in ("family", "config")]
    return ", ".join(part for part in (head, *settings) if part)


def _value_text(value: Any) -> str:
    """A setting's value as people read it: a class (``{class_path: zoo.callbacks.SET, ...}``) by its name."""
    if isinstance(value, dict) and "class_path" in value:
        return str(value["class_path"]).rsplit(".", 1)[-1]
    if isinstance(value, list) and value and all(isinstance(item, dict) and "class_path" in item for item in value):
        return "[" + ", ".join(_value_text(item) for item in value) + "]"
    return value if isinstance(value, str) else json.dumps(rounded(value))


def _wrap_parts(text: str, width: int) -> str:
    """A configuration's name in lines of about ``width`` characters, broken between its settings (never inside
    one, never cut): ``activation=relu,`` over ``hidden=[8]``."""
    lines: list[str] = []
    for part in re.split(r", (?=[\w.]+=)", text):  # before the next setting's name, not inside a value's [16, 16]
        if lines and len(lines[-1]) + 2 + len(part) <= width:
            lines[-1] += ", " + part
        else:
            if lines:
                lines[-1] += ","
            lines.append(part)
    return "\n".join(lines)


def _titled(title: str, note: str) -> str:
    """A title, wrapped, with what every configuration shares on its own line(s) under it."""
    return wrapped(title, 80) + (f"\n{wrapped(note, 90)}" if note else "")


def _legend_rows(entries: int) -> int:
    return -(-entries // 2)


def _legend_below(figure: Figure, axes: Any, title: str | None) -> None:
    """The axes' legend under the figure, outside the data (constrained layout makes room), in two columns."""
    handles, labels = axes.get_legend_handles_labels()
    if handles:
        figure.legend(
            handles, labels, loc="outside lower center", ncols=min(2, len(handles)), fontsize=9, title=title,
            title_fontsize=9,
        )  # fmt: skip


def _band(band: float, limits: tuple[float, float] | None) -> tuple[float, float]:
    """The orthogonal band, ±band, within the number's own range (a magnitude cosine's starts at 0)."""
    return (max(-band, limits[0]) if limits else -band), band


def _band_label(band: float, limits: tuple[float, float] | None) -> str:
    """The band as the definition reads: ``≤ 0.05`` for a number that cannot go below 0, else ``within ±0.05``."""
    return f"orthogonal: ≤ {band}" if limits and limits[0] >= 0 else f"orthogonal: within ±{band}"


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


def _file_name(key: str) -> str:
    """A column as a file name, without its analysis's name: ``pair_x0_x1_orthogonality``."""
    declared = declared_number(key)
    short = key.split(".", 1)[1] if declared else key
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", short)
