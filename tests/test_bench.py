"""zoo.bench: its three pipelines train alike on the same numbers, and docs/benchmarks.md is its output."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch
from conftest import ROOT

from zoo import ZooDataModule, create_model
from zoo.bench import loops, report
from zoo.bench.analysis_pass import ANALYSES, analysis_pass
from zoo.bench.sparse_epoch import connections, set_shaped_models


def test_the_per_sample_pipeline_decodes_to_the_data_modules_tensors(mnist):
    classic = loops.per_sample_mnist(mnist, "test", 64)
    inputs, targets = mnist.split("test")
    decoded = torch.stack([classic[i][0] for i in range(64)])
    torch.testing.assert_close(decoded, inputs[:64], atol=1e-5, rtol=0)
    assert [classic[i][1] for i in range(64)] == targets[:64].tolist()


@pytest.fixture(scope="module")
def small_mnist(data_dir) -> ZooDataModule:
    """600 training images, so that an epoch is five batches."""
    data = ZooDataModule("mnist", batch_size=128, val_fraction=0.99)
    data.setup("fit")
    return data


def test_each_pipeline_trains_one_epoch_of_the_model_it_is_given(small_mnist, tmp_path):
    template = create_model("FCNet", hidden=[16])
    cpu = torch.device("cpu")
    samples = len(small_mnist.split("train")[0])
    classic = loops.per_sample_mnist(small_mnist, "train", samples)
    batches = -(-samples // 128)
    runs = {
        "zoo": lambda model: loops.zoo_epoch(model, small_mnist, device=cpu, log_dir=str(tmp_path)),
        "plain": lambda model: loops.plain_epoch(model, small_mnist, device=cpu),
        "bare_lightning": lambda model: loops.bare_lightning_epoch(model, small_mnist, device=cpu),
        "per_sample": lambda model: loops.per_sample_epoch(model, classic, batch_size=128, device=cpu),
    }
    for name, run in runs.items():
        model = copy.deepcopy(template)
        optimizers = []
        model.configure_optimizers = lambda build=model.configure_optimizers, made=optimizers: (
            made.append(build()) or made[-1]
        )
        assert run(model) > 0
        steps = {int(state["step"]) for state in optimizers[0].state.values()}
        assert steps == {batches}, f"{name}: {steps} optimizer steps, expected {batches}"
        assert not torch.equal(model.head.weight, template.head.weight), name


def test_benchmarks_md_is_the_report_of_benchmarks_json():
    docs = ROOT / "docs"
    results = json.loads((docs / "benchmarks.json").read_text())
    assert (docs / "benchmarks.md").read_text() == report.markdown(results), (
        "docs/benchmarks.md differs from what scripts/bench.py makes of docs/benchmarks.json: rerun `python "
        "scripts/bench.py report`"
    )


def test_issue_25s_table_says_met_from_the_measured_figures_and_their_direction():
    """A target is met by being at most (a ratio of time) or at least (a speed) its number, as measured."""
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())

    def verdict(page: str, what: str) -> str:
        row = next(line for line in page.splitlines() if line.startswith(f"| {what} |"))
        return row.rstrip(" |").rpartition("| ")[2]

    speed = results["speed"]
    speed["iris_analyses"]["ratio_background"] = 1.9
    speed["per_step"]["FCNet [128]"]["zoo_vs_plain"] = 0.84
    speed["population"]["speedup_vs_single_runs"] = 40.0
    results["analysis_pass"]["rows"]["task_separation/100"]["pass"] = 2.01
    page = report.markdown(results)
    assert verdict(page, "`configs/iris.yaml` fit: with its analyses ÷ without") == "yes"
    assert verdict(page, "zoo ÷ plain, FCNet [128]") == "no"
    assert verdict(page, "… its speed-up over 100 single runs") == "yes"
    assert verdict(page, "task separation: a run's pass over 100 members") == "no"
    assert "| `configs/iris.yaml` fit: with its analyses ÷ without | 19× (19 s ÷ 1 s) | 1.9× | ≤ 2.0× | yes |" in page


def test_sparse_epoch_compares_set_yaml_with_the_same_shape_dense_net():
    sparse_net, dense_net = set_shaped_models()
    assert type(sparse_net).__name__ == "SparseNet" and sparse_net.hparams.backend == "sparse"
    assert type(dense_net).__name__ == "FCNet"
    assert dense_net.hparams.hidden == sparse_net.hparams.hidden == [1000, 1000, 1000]
    assert dense_net.hparams.dropout == sparse_net.hparams.dropout
    assert connections(dense_net) == 784 * 1000 + 2 * 1000 * 1000 + 1000 * 10
    assert connections(sparse_net) == sum(layer.connections for layer in sparse_net.sparse_layers) + 10_000
    assert connections(sparse_net) / connections(dense_net) <= 0.05


def test_the_populations_spread_is_the_sample_standard_deviation():
    """n − 1, as everywhere in zoo: 0.1, 0.2, 0.3 have std 0.1 (0.0816 with n)."""
    assert report.mean_std([0.1, 0.2, 0.3]) == "0.2000 ± 0.1000"
    assert report.mean_std([0.5]) == "0.5000 ± 0.0000"


def test_an_analysis_pass_of_a_population_is_timed_and_reported(tmp_path):
    """Each analysis is timed whole and alone; its section lands in benchmarks.json and on the page."""
    results = analysis_pass(members=[3], passes=1, samples=64, docs=tmp_path)
    rows = results["rows"]
    assert set(rows) == {"task_separation/3", "activations/3"}
    assert all(row["members"] == 3 and row["pass"] > 0 and row["analysis"] > 0 for row in rows.values())
    assert json.loads((tmp_path / "benchmarks.json").read_text())["analysis_pass"] == results
    page = (tmp_path / "benchmarks.md").read_text()
    assert "## A population's analysis pass" in page and "| task separation | 3 |" in page
    assert set(results["figure_seconds"]) == set(ANALYSES) and "figures of a pass, drawn and written inline" in page
    replaced = {"load_average": 1.5, "analysis": {"activations/3": 9.87}}  # a run before this one: a before/after
    again = report.markdown({"analysis_pass": {**results, "previous": replaced}})
    assert "| analysis, run before |" in again and "(load average 1.5 when it ended)" in again
    assert again.count(" 9.87 s |") == 1 and "| task separation | 3 |" in again and " – |" in again


def test_a_count_below_one_is_refused_in_one_line():
    """--repeats 0 once ended in min() of nothing, a traceback after the first benchmark's set-up."""
    for flag in ("--repeats", "--fc-repeats"):
        done = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "bench.py"), "speed", flag, "0"], capture_output=True, text=True
        )
        assert done.returncode == 2, done.stderr
        assert f"argument {flag}: must be at least 1, got 0" in done.stderr and "Traceback" not in done.stderr


def test_the_gpu_records_sections_land_on_the_page_as_measured_even_cut_short(tmp_path):
    """scripts/gpu_record.sh's benchmarks on the CPU (small): each section measured, written, drawn from the JSON.

    A record cut short after one section (the device call's limit) is merged as far as it got.
    """
    from zoo.bench.gpu import merge_record
    from zoo.bench.speed import member_analyses, population_step

    cpu = torch.device("cpu")
    populations = {"2": population_step(members=2, repeats=1, log_dir=str(tmp_path / "logs"), epochs=1, device=cpu)}
    row = populations["2"]
    assert row["members"] == 2 and row["epochs"] == 1
    assert (
        row["wall_vs_arithmetic"] == row["wall_ms_per_step"]["population"] / row["arithmetic_ms_per_step"]["population"]
    )
    record = {"machine": "x86_64, 2 CPU threads", "cpu": "x86_64, 2 CPU threads", "torch": "2", "repeats": 1}
    (tmp_path / "gpu.json").write_text(json.dumps({**record, "populations": populations}))
    merge_record(tmp_path / "gpu.json", docs=tmp_path)
    page = (tmp_path / "benchmarks.md").read_text()
    assert "## The GPU record's benchmarks, run without a GPU" in page  # no sync count: no GPU behind it
    assert f"| 2 | 1 | {row['wall_ms_per_step']['population']:.2f} ms |" in page
    assert "A population's analyses" not in page  # not measured: not drawn

    analyses = member_analyses(members=2, repeats=1, samples=64, device=cpu, by_member=False)
    assert set(analyses) == {"task_separation", "activations"} and "member_by_member" not in analyses["activations"]
    (tmp_path / "gpu.json").write_text(json.dumps({**record, "member_analyses": {"2/cpu": analyses}}))
    merge_record(tmp_path / "gpu.json", docs=tmp_path)
    page = (tmp_path / "benchmarks.md").read_text()
    assert f"| activations | 2 | cpu | {analyses['activations']['batched']:.2f} | – |" in page
    assert json.loads((tmp_path / "benchmarks.json").read_text())["gpu"]["member_analyses"]["2/cpu"] == analyses


def test_the_hook_dispatch_figure_is_measured_on_a_zoo_runs_trainer_and_lands_on_the_page(run_dir):
    from zoo.bench.speed import hook_dispatch

    row = hook_dispatch(log_dir=str(run_dir / "logs"), steps=20, repeats=1)
    assert row["callbacks"] >= 8  # a run's own: its record, summaries, config and checkpoints (no analyses here)
    assert row["lightning"] > 0 and row["zoo"] > 0
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    results["speed"]["hook_dispatch"] = row
    page = report.markdown(results)
    assert f"Lightning's dispatch → zoo's (`zoo.hooks`) | {row['lightning']:.0f} µs → {row['zoo']:.0f} µs |" in page


def test_the_issue_25_paragraph_says_what_importing_lightning_took_in_the_same_run():
    results = json.loads((ROOT / "docs" / "benchmarks.json").read_text())
    startup = results["speed"]["startup_seconds"]
    startup["import pytorch_lightning"] = 6.25
    page = report.markdown(results)
    said = "what `--help` still takes is importing Lightning (`import pytorch_lightning` alone: 6.25 s in this run)"
    assert said in page
    assert "| `import pytorch_lightning` | 6.25 s |" in page
    del startup["import pytorch_lightning"]  # a run from before it was measured says nothing of it
    assert "`import pytorch_lightning` alone" not in report.markdown(results)
