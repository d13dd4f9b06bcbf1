"""The figures of a study and of a run, judged by their matplotlib objects: ranges, labels, what joins what."""

from __future__ import annotations

import json

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from scipy import stats

from zoo.analyses import TASK_SEPARATION
from zoo.analysis.task_separation import task_separation
from zoo.figures import noted
from zoo.models import FCNet
from zoo.sweep.summary import (
    _distribution,
    _metric_against,
    configurations,
    ordered,
    paired_difference,
    write_summary,
)
from zoo.writer import AnalysisWriter

PARAMS = {'{"model.hidden": [8]}': 67, '{"model.hidden": [16, 16]}': 403, '{"model.density": 0.1}': 50}
PARAMS['{"model.density": 0.3}'] = 120
PAIR = "task_separation.pair/versicolor_virginica/signed_orthogonality"


def rows() -> list[dict]:
    """Two architectures of one family and a density series of another, two seeds each; cosines near their bound."""
    made = []
    settings = [("FCNet", {"model.hidden": [8]}, 0.90), ("FCNet", {"model.hidden": [16, 16]}, 0.95)]
    settings += [("SparseNet", {"model.density": 0.1}, 0.80), ("SparseNet", {"model.density": 0.3}, 0.85)]
    for family, overrides, acc in settings:
        for seed, cosine in ((0, 0.98), (1, -0.99)):
            made.append(
                {
                    "trial": f"{family}-{seed}", "config": "iris.yaml", "family": family, "seed": seed,
                    "overrides": json.dumps(overrides), "params_nonzero": PARAMS[json.dumps(overrides)],
                    "metric": "acc", "test_acc": acc + 0.01 * seed, "val_acc": acc, "train_seconds": 1.0 + seed,
                    "eval_seconds": 0.1, "epochs": 3, PAIR: cosine, "task_separation.mean_interference": 0.1 * seed,
                    "analysis_settings": json.dumps({"task_separation": {"split": "test", "max_samples": 500}}),
                }
            )  # fmt: skip
    return made


def test_a_distribution_reads_as_its_declaration_says():
    groups = configurations(rows())
    order = ordered(groups)
    assert [groups[name][0]["test_acc"] for name in order] == [0.95, 0.90, 0.85, 0.80]  # the summary's order
    axes = _distribution(groups, order, PAIR).axes[0]
    assert axes.get_ylabel().replace("\n", " ") == "pair versicolor_virginica: cosine of the pair's a·∂y/∂a columns"
    low, high = axes.get_ylim()
    assert -1.1 < low < -1 and 1 < high < 1.1  # a cosine on [−1, 1], not the data's range
    shown = ["FCNet, hidden=[16, 16]", "FCNet, hidden=[8]", "SparseNet, density=0.3", "SparseNet, density=0.1"]
    assert [label.get_text().replace(",\n", ", ") for label in axes.get_xticklabels()] == shown  # what differs, whole
    assert axes.get_title().endswith("\nall: config iris")  # what every configuration shares, once
    for index, bar in enumerate(axes.containers):  # one errorbar per configuration: mean and its interval
        x, y = bar.lines[0].get_data()
        assert x[0] == index  # on its own category, not beside it
        segment = bar.lines[2][0].get_segments()[0]
        assert -1 <= segment[:, 1].min() and segment[:, 1].max() <= 1  # within the cosine's bounds
    legend = [text.get_text() for text in axes.figure.legends[0].get_texts()]
    assert {"one seed", "mean and min–max over seeds", "orthogonal: within ±0.05"} == set(legend)


def test_a_magnitude_cosine_band_reads_as_its_definition():
    """|a·∂y/∂a| cosines cannot go below 0: orthogonal is ≤ 0.05, drawn from 0, in dots and histograms alike."""
    key = PAIR.replace("signed_orthogonality", "orthogonality")
    few = [dict(row, **{key: 0.3}) for row in rows()]
    many = [
        dict(row, seed=seed, **{key: 0.01 * (seed % 9)}) for row in rows() if row["seed"] == 0 for seed in range(25)
    ]
    for made, span in ((few, "y"), (many, "x")):
        groups = configurations(made)
        figure = _distribution(groups, ordered(groups), key)
        [band] = [patch for patch in figure.axes[0].patches if patch.get_label().startswith("orthogonal")]
        assert band.get_label() == "orthogonal: ≤ 0.05"
        box = band.get_bbox()  # in data units along the cosine's axis
        assert ((box.y0, box.y1) if span == "y" else (box.x0, box.x1)) == (0.0, 0.05)


def _drawn(figure):
    """The figure drawn once, as a PNG would be: its renderer, for the artists' window extents."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def _sweep_rows() -> list[dict]:
    """The walkthrough's sweep: FCNet hidden [8]/[16] × activation relu/tanh on multimult, two seeds each."""
    made = []
    for hidden, activation, r2 in (([8], "relu", 0.6), ([8], "tanh", 0.1), ([16], "relu", 0.86), ([16], "tanh", 0.2)):
        overrides = {"model.init_args.activation": activation, "model.init_args.hidden": hidden}
        for seed in (0, 1):
            made.append(
                {
                    "trial": f"mm-{hidden[0]}-{activation}-{seed}", "config": "configs/multimult.yaml",
                    "family": "FCNet", "seed": seed, "overrides": json.dumps(overrides),
                    "params_nonzero": 58 if hidden == [8] else 114, "metric": "r2", "test_r2": r2 + 0.02 * seed,
                    "val_r2": r2, "train_seconds": 1.0 + seed, "eval_seconds": 0.1, "epochs": 2,
                    "task_separation.pair/x0*x1_x2*x3/orthogonality": 0.3 + 0.1 * seed,
                }
            )  # fmt: skip
    return made


def test_every_configuration_has_its_own_colour_marker_and_name():
    groups = configurations(_sweep_rows())
    figure = _metric_against(groups, ordered(groups), "params_nonzero", "nonzero parameters", "r2", True)
    axes = figure.axes[0]
    bars = list(axes.containers)
    assert len(bars) == 4
    looks = {(str(bar.lines[0].get_color()), bar.lines[0].get_marker()) for bar in bars}
    assert len({colour for colour, _ in looks}) == 4 and len({marker for _, marker in looks}) == 4
    legend = figure.legends[0]
    names = {text.get_text() for text in legend.get_texts()}
    assert names == {f"activation={a}, hidden=[{h}]" for a in ("relu", "tanh") for h in (8, 16)}
    assert axes.get_title().endswith("all: FCNet (multimult)")  # what they share, said once
    renderer = _drawn(figure)
    data = axes.get_window_extent(renderer)
    assert not legend.get_window_extent(renderer).overlaps(data)  # the legend covers no point and no bar
    assert figure.bbox.contains(*legend.get_window_extent(renderer).p0)  # and is inside the figure
    assert figure.bbox.contains(*legend.get_window_extent(renderer).p1)


def test_distribution_ticks_name_what_differs_whole_and_apart():
    groups = configurations(_sweep_rows())
    figure = _distribution(groups, ordered(groups), "task_separation.pair/x0*x1_x2*x3/orthogonality")
    axes = figure.axes[0]
    renderer = _drawn(figure)
    ticks = axes.get_xticklabels()
    texts = [tick.get_text() for tick in ticks]
    assert len(set(texts)) == 4 and not any("…" in text or "FCNet" in text for text in texts)
    assert all("activation=" in text and "hidden=[" in text and text.count("]") == 1 for text in texts)
    boxes = [tick.get_window_extent(renderer) for tick in ticks]
    assert all(not one.overlaps(other) for i, one in enumerate(boxes) for other in boxes[i + 1 :])
    assert all(figure.bbox.contains(*box.p0) and figure.bbox.contains(*box.p1) for box in boxes)  # nothing cut
    legend = figure.legends[0].get_window_extent(renderer)
    assert not legend.overlaps(axes.get_window_extent(renderer))
    assert all(not legend.overlaps(box) for box in boxes)


def test_lines_join_a_continuum_only():
    groups = configurations(rows())
    axes = _metric_against(groups, ordered(groups), "params_nonzero", "nonzero parameters", "acc", True).axes[0]
    assert all(bar.lines[0].get_linestyle() == "None" for bar in axes.containers)  # a point per configuration
    joined = [line for line in axes.get_lines() if line.get_label().endswith("one setting varied")]
    assert [line.get_label() for line in joined] == ["SparseNet: one setting varied"]  # densities; not [8], [16, 16]
    assert sorted(joined[0].get_xdata()) == [50, 120]
    same_size = rows()
    for row in same_size:
        if row["family"] == "SparseNet":
            row["params_nonzero"] = 100  # a setting that leaves x where it was (a learning rate): no line
    groups = configurations(same_size)
    axes = _metric_against(groups, ordered(groups), "params_nonzero", "nonzero parameters", "acc", True).axes[0]
    assert not [line for line in axes.get_lines() if line.get_label().endswith("one setting varied")]
    assert axes.get_ylabel() == "test accuracy"


def test_seeds_that_agree_draw_bars_of_length_zero():
    """Three seeds at x = 1.831: their mean (fsum) lies an ulp above their max, a negative bar matplotlib refuses."""
    same = [dict(row, seed=seed, train_seconds=1.831, test_acc=0.9) for row in rows() for seed in (0, 1, 2)]
    groups = configurations(same)
    axes = _metric_against(groups, ordered(groups), "train_seconds", "training seconds", "acc", False).axes[0]
    for bar in axes.containers:
        for lines in bar.lines[2]:
            for segment in lines.get_segments():
                assert np.ptp(segment[:, 0]) < 1e-9 or np.ptp(segment[:, 1]) < 1e-9  # a point, not a bar


def test_the_summary_embeds_its_figures_and_states_its_settings(tmp_path):
    written = write_summary(tmp_path, rows())
    summary = (tmp_path / "summary.md").read_text()
    assert "Epochs trained: 3." in summary and "on the test split, at most 500 samples" in summary
    for path in written[1:]:
        assert f"]({path.name})" in summary


def test_run_figures_say_epoch_and_member_and_draw_cosines_on_their_range(tmp_path):
    torch.manual_seed(0)
    model = FCNet(hidden=[6], input_shape=(4,), num_outputs=3, activation="relu")
    with torch.no_grad():
        model.blocks[0][0].bias[2] = -100.0  # unit 2 of fc1 never fires: dead
    inputs, targets = torch.randn(60, 4), torch.arange(60) % 3
    result = task_separation(model, inputs, targets, ["a", "b", "c"], data="test")
    writer = AnalysisWriter(tmp_path, prefix="task_separation", member=1)
    figures = TASK_SEPARATION.figures_for(result)
    image = figures["orthogonality"].axes[0].get_images()[0]
    assert image.get_clim() == (0.0, 1.0)
    assert figures["signed_orthogonality"].axes[0].get_images()[0].get_clim() == (-1.0, 1.0)
    noted(figures["orthogonality"], writer.note(4))
    assert figures["orthogonality"].axes[0].get_title().endswith("(epoch 4, member 1)")
    assert np.isfinite(image.get_array()).all()
    attribution = figures["attribution/fc1"].axes[0]
    labels = [label.get_text() for label in attribution.get_yticklabels()]
    assert "2 (dead)" in labels and sum(label.endswith("(dead)") for label in labels) == int(result.dead["fc1"].sum())
    row = labels.index("2 (dead)")
    dead_rows = [index for index, label in enumerate(labels) if label.endswith("(dead)")]
    assert dead_rows == list(range(len(labels) - len(dead_rows), len(labels)))  # the dead last, not inside a group
    assert np.isnan(np.ma.filled(attribution.get_images()[0].get_array(), np.nan)[row]).all()  # blank, not share 0
    dead = int(result.dead["fc1"].sum())  # the count in words: past 30 rows a tick names one dead neuron only
    assert f"{dead} of 6 dead, blank, last" in attribution.get_title().replace("\n", " ")


def test_a_paired_difference_is_scipys_paired_t_interval():
    rng = np.random.default_rng(3)
    a = {seed: 0.98 + 0.001 * rng.standard_normal() for seed in range(10)}
    b = {seed: value - 0.0005 + 0.0008 * rng.standard_normal() for seed, value in a.items()}
    b[99] = 0.5  # a seed only one side ran is no pair
    found = paired_difference(a, b)
    seeds = list(range(10))
    reference = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds])
    interval = reference.confidence_interval(0.95)
    assert found["n"] == 10 and abs(found["p"] - reference.pvalue) < 1e-12
    assert abs(found["low"] - interval.low) < 1e-12 and abs(found["high"] - interval.high) < 1e-12
    assert found["wins"] == sum(a[s] > b[s] for s in seeds)
    assert paired_difference({0: 1.0}, {0: 0.9, 1: 0.8}) is None  # one shared seed: no interval


def test_the_summary_states_the_paired_difference(tmp_path):
    write_summary(tmp_path, rows())
    summary = (tmp_path / "summary.md").read_text()
    table = summary.split("## Paired differences in test acc")[1].split("\n\n")[2].splitlines()
    assert len(table) == 2 + 3  # header, rule and the three configurations after the first
    first_against_last = table[-1].split(" | ")  # FCNet [16, 16] (0.95, 0.96) against SparseNet 0.1 (0.80, 0.81)
    assert first_against_last[1:5] == ["2", "+0.1500 [+0.1500, +0.1500]", "2 of 2", "– |"]  # no spread, no p


def test_a_configurations_name_wraps_between_its_settings_never_inside_a_value():
    from zoo.sweep.summary import _wrap_parts

    wrapped = _wrap_parts("FCNet, hidden=[16, 16], activation=relu", 12)
    assert wrapped.splitlines() == ["FCNet,", "hidden=[16, 16],", "activation=relu"]


def test_named_families_are_named_by_their_names_and_classes_by_theirs():
    """A trial's name: tells its configuration apart; a setting only where it tells apart one family's."""
    from zoo.sweep.summary import distinctions

    callbacks = [{"class_path": "zoo.callbacks.SET", "init_args": {"zeta": 0.3}}]
    made = [
        {"family": "SET", "config": "set.yaml", "overrides": json.dumps({"trainer.callbacks": callbacks})},
        {"family": "fixed topology", "config": "set.yaml", "overrides": json.dumps({"trainer.callbacks": None})},
        {"family": "SET", "config": "set.yaml", "overrides": json.dumps({"trainer.callbacks": callbacks, "seed": 1})},
    ]
    groups = {f"c{index}": [row] for index, row in enumerate(made)}
    names, shared = distinctions(groups, list(groups))
    assert names == {"c0": "SET", "c1": "fixed topology", "c2": "SET, seed=1"}
    assert shared == "all: config set"
    family = {"c0": [made[0]], "c3": [{**made[0], "overrides": json.dumps({"trainer.callbacks": callbacks[0]})}]}
    assert distinctions(family, list(family))[0] == {"c0": "callbacks=[SET]", "c3": "callbacks=SET"}  # not JSON


def test_a_searched_number_reads_in_four_digits_and_never_merges_two_configurations():
    """A search samples a learning rate to 17 digits: names show 4, the study still tells every value apart."""
    from zoo.sweep.spec import Trial
    from zoo.sweep.summary import distinctions

    def row(lr: float) -> dict:
        return {"family": "", "config": "iris.yaml", "overrides": json.dumps({"optimizer.init_args.lr": lr})}

    groups = configurations([row(0.0012345678901234567), row(0.03), row(0.0012345678901234567)])
    assert list(groups) == ["lr=0.001235 (iris)", "lr=0.03 (iris)"] and len(groups["lr=0.001235 (iris)"]) == 2
    twins = configurations([row(0.0012345678), row(0.0012345679)])  # one name once rounded: the exact ones
    assert list(twins) == ["lr=0.0012345678 (iris)", "lr=0.0012345679 (iris)"]
    names, _ = distinctions(groups, list(groups))
    assert sorted(names.values()) == ["lr=0.001235", "lr=0.03"]
    trial = Trial("configs/iris.yaml", {"optimizer.init_args.lr": 0.0012345678901234567}, (0,), "out")
    assert trial.label == "iris lr=0.001235 seed 0"
    assert "--optimizer.init_args.lr=0.0012345678901234567" in trial.flags()  # the run gets the value itself
