"""The how-small study (scripts/how_small.py) on a tiny iris study: a row per seed and stage, exact pruning,
SparseNet at the compressed FCNet's size, a report with n and intervals, and a rerun that redoes nothing."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS

from zoo.errors import ZooError
from zoo.models import SparseNet
from zoo.surgery.study import FIXED, SET, density_for, main, parser, run
from zoo.sweep import read_sweep, run_sweep

SEEDS = [0, 1]
TOLERANCES = ["0", "0.05"]
COLUMNS_CONFIG = {
    "seed_everything": 0,
    "model": {"class_path": "zoo.models.ColumNet", "init_args": {"hidden": [8], "activations": ["relu", "tanh"]}},
    "data": {"dataset": "iris", "batch_size": 16, "val_fraction": 0.2},
    "trainer": {"log_every_n_steps": 5},
    "optimizer": {"class_path": "torch.optim.Adam", "init_args": {"lr": 0.01}},
}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """Two seeds of an iris FCNet and an iris ColumNet (2 epochs of 4 batches, no analyses), then how_small."""
    folder = tmp_path_factory.mktemp("how_small")
    columns = folder / "iris_columns.yaml"
    columns.write_text(yaml.safe_dump(COLUMNS_CONFIG))
    spec = {
        "seeds": SEEDS,
        "common": {"trainer.max_epochs": 2, "trainer.callbacks": None, "trainer.limit_train_batches": 4},
        "trials": [{"config": str(CONFIGS / "iris.yaml"), "name": "FCNet"}, {"config": str(columns), "name": "Col"}],
    }
    (folder / "sweep.yaml").write_text(yaml.safe_dump(spec))
    output = folder / "study"
    run_sweep(read_sweep(folder / "sweep.yaml"), output, say=lambda line: None)
    main([str(output), "--tolerances", *TOLERANCES, "--epochs", "1"])
    return output


def rows_of(study: Path) -> list[dict[str, str]]:
    with open(study / "how_small.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_a_row_per_network_seed_and_stage(study):
    rows = rows_of(study)
    stages = ["trained", "pruned", "compressed 0", "compressed 0.05"]
    for network in ("FCNet (iris)", "Col (iris_columns)"):
        found = sorted((int(row["seed"]), row["stage"]) for row in rows if row["network"] == network)
        assert found == sorted((seed, stage) for seed in SEEDS for stage in stages)
    for network in (FIXED, SET):
        found = sorted((int(row["seed"]), row["stage"]) for row in rows if row["network"] == network)
        assert found == [(seed, "matched 0.05") for seed in SEEDS]
    assert len(rows) == 2 * 2 * 4 + 2 * 2


def test_pruning_is_exact_and_compression_stays_within_its_tolerance(study):
    rows = rows_of(study)
    pruned = [row for row in rows if row["stage"] == "pruned"]
    assert len(pruned) == 4 and all(float(row["max_delta_judged"]) <= 1e-4 for row in pruned)
    for row in pruned:  # the pruned network is never larger than the trained one
        trained = next(r for r in rows if (r["trial"], r["stage"]) == (row["trial"], "trained"))
        assert int(row["params_nonzero"]) <= int(trained["params_nonzero"])
    for row in rows:
        if row["network"] == "FCNet (iris)" and row["stage"].startswith("compressed"):
            base = next(r for r in rows if (r["trial"], r["stage"]) == (row["trial"], "pruned"))
            assert float(row["val_acc"]) >= float(base["val_acc"]) - float(row["tolerance"]) - 1e-9
    for row in rows:  # ColumNet compression: numbers where it exists, else said why, never a crash
        if row["network"] == "Col (iris_columns)" and row["stage"].startswith("compressed"):
            assert (row["available"] == "True" and row["test_acc"]) or "ColumNet" in row["note"]


def test_sparsenet_matches_the_compressed_fcnets_mean_count(study):
    rows = rows_of(study)
    counts = [
        int(r["params_nonzero"]) for r in rows if (r["network"], r["stage"]) == ("FCNet (iris)", "compressed 0.05")
    ]
    target = round(statistics.fmean(counts))
    sparse = [row for row in rows if row["network"] in (FIXED, SET)]
    assert {int(row["target_params"]) for row in sparse} == {target}
    assert all(abs(int(row["params_nonzero"]) - target) <= 0.03 * target for row in sparse)
    assert all(0 <= float(row["test_acc"]) <= 1 for row in sparse)
    spec = yaml.safe_load(next((study / "how_small").glob("sparse-*/sweep.yaml")).read_text())
    assert spec["common"]["model.init_args.hidden"] == [16, 16] and spec["common"]["trainer.max_epochs"] == 1
    assert spec["common"]["data.dataset"] == "iris" and spec["seeds"] == SEEDS
    assert spec["common"]["trainer.limit_train_batches"] == 4  # on as much data as the trials (it trained on all)


def test_the_report_states_n_and_the_intervals(study):
    text = (study / "how_small.md").read_text()
    assert "n=2)" in text and "## Paired differences in test accuracy" in text
    assert "| SET − fixed topology, as large as FCNet (iris) compressed within 5 points | 2 |" in text
    assert "| FCNet (iris): compressed within 5 points − trained | 2 |" in text
    assert "[" in text.split("SET − fixed topology")[1].splitlines()[0]  # its 95% interval
    assert (study / "how_small.png").stat().st_size > 10_000


def test_a_rerun_redoes_nothing(study, capsys):
    lines: list[str] = []
    run(parser().parse_args([str(study), "--tolerances", *TOLERANCES, "--epochs", "1"]), say=lines.append)
    assert not any("pruning" in line for line in lines)
    assert any("nothing to run" in line for line in lines)


def test_a_folder_without_a_study_is_one_line(tmp_path):
    with pytest.raises(ZooError, match="holds no study.db"):
        run(parser().parse_args([str(tmp_path)]))


def test_a_missing_sparse_recipe_is_one_line(study):
    with pytest.raises(ZooError, match="--sparse-config nope.yaml not found; give a SparseNet config"):
        run(parser().parse_args([str(study), "--sparse-config", "nope.yaml"]))


@pytest.mark.parametrize("target", [5_000, 20_000, 49_000])
def test_the_density_is_found_by_counting_built_networks(target):
    def build(density):
        return SparseNet(hidden=[64, 32], density=density, input_shape=(1, 28, 28), num_outputs=10)

    density, count = density_for(target, build)
    assert count == build(density).parameter_counts()["nonzero"]
    assert abs(count - target) <= 1  # a step of 1e-7 in density moves the count by at most one connection here


def test_sparse_seeds_trains_the_first_seeds_only(study):
    """Last in this file: it rewrites the study's report with SparseNet on one seed."""
    run(parser().parse_args([str(study), "--tolerances", *TOLERANCES, "--epochs", "1", "--sparse-seeds", "1"]))
    specs = [yaml.safe_load(path.read_text()) for path in (study / "how_small").glob("sparse-*/sweep.yaml")]
    assert sorted(spec["seeds"] for spec in specs) == [SEEDS[:1], SEEDS]
    sparse = [row for row in rows_of(study) if row["network"] in (FIXED, SET)]
    assert sorted(int(row["seed"]) for row in sparse) == [SEEDS[0], SEEDS[0]]
    with pytest.raises(ZooError, match="--sparse-seeds must be at least 1, got 0"):
        run(parser().parse_args([str(study), "--sparse-seeds", "0"]))


def test_the_figures_legend_keeps_within_the_figure_with_long_network_names():
    """Two columns of 'FCNet hidden=[64, 32] (fc), compressed within 5 points (n=2)' ran off both edges."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from zoo.surgery.study_report import _figure

    network = "FCNet hidden=[64, 32] activation=relu dropout=0.2 (fc)"
    stages = ["trained", "pruned", "compressed 0.01", "compressed 0.05"]
    row = {"available": True, "seed": 0, "params_nonzero": 50_000, "test": 0.9}
    groups = {(name, stage): [row] for name in (network, network.replace("64", "128")) for stage in stages}
    groups |= {(kind, "matched 0.05"): [row] for kind in (FIXED, SET)}
    figure = _figure(groups, "acc")
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    (legend,) = figure.legends
    box = legend.get_window_extent(canvas.get_renderer())
    assert 0 <= box.x0 and box.x1 <= figure.bbox.width, (box, legend._ncols)
    assert len(legend.get_texts()) == len(groups)
