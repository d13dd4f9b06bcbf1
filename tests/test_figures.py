"""Run figures judged as they are seen: drawn once, then their artists' places on the page compared."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from zoo.analyses.activations import _caption_note, _captions
from zoo.analyses.topology import TOPOLOGY
from zoo.analysis.topology import sparse_topology
from zoo.figures import degree_histograms, noted, pca_and_compression, unit_gallery
from zoo.models import SparseNet


def drawn(figure):
    """``figure`` drawn as a PNG would be; its renderer, for window extents (pixels at 100 dpi)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return canvas.get_renderer()


def inside(figure, box) -> bool:
    return (
        figure.bbox.x0 <= box.x0 and box.x1 <= figure.bbox.x1 and figure.bbox.y0 <= box.y0 and box.y1 <= figure.bbox.y1
    )


def title_of(figure):
    """The figure's suptitle, as a Text."""
    return next(text for text in figure.texts if text.get_text() == figure.get_suptitle())


def compression(units: int = 64):
    explained = torch.linspace(0.3, 1.0, units)
    ks = list(range(1, units + 1))
    scores = [0.9 - 0.6 / k for k in ks]
    return pca_and_compression(
        explained, ks=ks, scores=scores, full=0.9, tolerance=0.005, smallest_k=16, metric="accuracy", layer="fc1"
    )


def test_both_compression_panels_count_components_alike_and_keep_legends_off_the_data():
    figure = noted(compression(), "epoch 0")
    renderer = drawn(figure)
    spectrum, curve = figure.axes
    labels = [[tick.get_text() for tick in axes.get_xticklabels() if tick.get_visible()] for axes in (spectrum, curve)]
    assert labels[0] == labels[1]  # one tick style on both: not 10⁰ above and 2⁰ below
    assert {"1", "2", "4", "8", "16", "32", "64"} <= set(labels[0])  # plain counts
    assert spectrum.get_xlim() == curve.get_xlim()
    legends = [legend for subfigure in figure.subfigs for legend in subfigure.legends]
    assert len(legends) == 2
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert inside(figure, box)
        for axes in (spectrum, curve):
            assert not box.overlaps(axes.get_window_extent(renderer))  # under its panel, over no point
    assert spectrum.get_title() == "PCA spectrum, fc1\n(epoch 0)"
    assert figure.get_figwidth() >= 6.4


def units(count: int = 4, shown: int = 5):
    torch.manual_seed(0)
    return torch.rand(count, 1, 28, 28), torch.rand(count, shown, 1, 28, 28)


def fake_result(selectivity: bool = True):
    """What ``_captions`` reads of an activation analysis: two units of fc1 over three classes."""
    profile = torch.tensor([[3.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    stats = SimpleNamespace(class_profile=profile, selectivity=torch.tensor([0.58, 0.0]) if selectivity else None)
    return SimpleNamespace(
        output_names=["zero", "one", "two"],
        maximized_units={"fc1": [0, 1], "output": [2]},
        maximized_values={"fc1": [9.714, 2.0], "output": [7.25]},
        layers={"fc1": stats},
    )


def test_maximization_labels_say_in_words_what_they_are():
    result = fake_result()
    first, second = _captions(result, "fc1")
    assert first == "unit 0\nactivation 9.71\nprefers zero (75%)\n  and one (25%)\nselectivity 0.58"
    assert "act." not in first and "sel." not in first
    assert second.startswith("unit 1\nactivation 2.00\nprefers ")  # three classes alike: 33% each, two named
    note = _caption_note(result, "fc1")
    for word in ("activation:", "prefers:", "selectivity:", "15%", "mean activation"):
        assert word in note
    assert "selectivity" not in _caption_note(fake_result(selectivity=False), "fc1")
    assert _captions(result, "output") == ["class two\nlogit 7.2"]
    assert _caption_note(result, "output").startswith("logit:")


def test_the_maximization_gallery_has_no_empty_band_and_cuts_nothing():
    result = fake_result()
    generated, examples = units(2)
    title = "Inputs that maximize units of fc1 (red frame), beside the analysed samples that drive it hardest"
    figure = unit_gallery(generated, examples, _captions(result, "fc1"), title, note=_caption_note(result, "fc1"))
    noted(figure, "epoch 12, member 3")
    renderer = drawn(figure)
    [axes] = figure.axes
    mosaic = axes.get_images()[0].get_window_extent(renderer)
    heading = axes.title.get_window_extent(renderer)
    suptitle = title_of(figure).get_window_extent(renderer)
    [note] = [text for text in figure.texts if text is not title_of(figure)]
    below = note.get_window_extent(renderer)
    dpi = figure.dpi
    assert suptitle.y0 - mosaic.y1 < 0.6 * dpi  # title, heading, tiles: one after the other, no band between
    assert heading.y0 >= mosaic.y1 and suptitle.y0 >= heading.y1  # and none over another
    assert below.y1 <= mosaic.y0 and mosaic.y0 - below.y1 < 0.3 * dpi
    for text in (suptitle, heading, below, *(label.get_window_extent(renderer) for label in axes.texts)):
        assert inside(figure, text)  # nothing cut, the noted title included
    for label in axes.texts:
        box = label.get_window_extent(renderer)
        assert box.x1 <= mosaic.x0 and label.get_fontsize() >= 9  # beside the tiles, readable
    assert figure.get_figwidth() >= 6.4


def test_the_output_gallery_grows_with_its_rows_and_keeps_its_margins():
    generated, examples = units(10)
    captions = [f"class {k}\nlogit {k}.0" for k in range(10)]
    figure = unit_gallery(generated, examples, captions, "Inputs that maximize each class logit", note="logit: it.")
    renderer = drawn(figure)
    mosaic = figure.axes[0].get_images()[0].get_window_extent(renderer)
    assert figure.bbox.height - mosaic.height < 1.3 * figure.dpi  # the margins stay small: no band that grows
    assert inside(figure, title_of(figure).get_window_extent(renderer))


def test_set_figures_say_the_epoch_once():
    model = SparseNet(hidden=[16], density=0.5, input_shape=(1, 6, 6), num_outputs=3)
    for epoch, note in ((0, "epoch 0"), (-1, "before training")):
        figures = TOPOLOGY.figures_for(sparse_topology(model, epoch=epoch), history=[])
        for figure in figures.values():
            noted(figure, note)  # as the run's writer titles them
            title = figure.get_suptitle()
            assert title.count("epoch") + title.count("before training") == 1, title
            assert title.endswith(f"— {note}")


def test_degree_histograms_tick_whole_numbers_only():
    """Fan-in and unit counts are whole numbers; a few units must not get ticks at 0.5, 1.5, ..."""
    figure = degree_histograms({"sparse1": torch.tensor([3, 4, 4, 5]), "output": torch.tensor([1, 2])}, "Fan-in", "x")
    drawn(figure)
    for axes in figure.axes:
        for ticks in (axes.get_xticks(), axes.get_yticks()):
            assert len(ticks) >= 2
            assert all(float(tick).is_integer() for tick in ticks), ticks


def test_a_long_note_shrinks_the_title_to_fit_and_cuts_nothing():
    """A population member's note ("epoch 3, member 0") ran a study figure's title off both edges."""
    title = "Output pairs over training (cosines; mean ± std over seeds)"
    for note, width, lines in (
        ("epoch 3, member 0", 5, 1),  # a smaller font is enough
        ("epoch 3, member 0 of a population of 1,000 seeds trained together", 4, 2),  # 7 points are not: two lines
    ):
        figure = Figure(figsize=(width, 3))
        figure.add_subplot(1, 1, 1).plot([0, 1], [0, 1])
        figure.suptitle(title, fontsize=11)
        noted(figure, note)
        drawn(figure)
        said = title_of(figure)
        assert inside(figure, said.get_window_extent()), said.get_text()
        assert said.get_text().count("\n") == lines - 1 and said.get_text().replace("\n", " — ") == f"{title} — {note}"
        assert 7 <= said.get_fontsize() < 11
