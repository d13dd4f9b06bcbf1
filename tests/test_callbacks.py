"""Analysis callbacks through the real CLI: files on disk and TensorBoard entries read back."""

from __future__ import annotations

import json
import os
import re
import runpy
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, ROOT
from matplotlib.image import imread
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from zoo.analyses import Analysis
from zoo.cli import main
from zoo.writer import AnalysisWriter

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TASK_SEPARATION_KEYS = {
    "interference",
    "interference_per_layer",
    "attribution",
    "roles",
    "orthogonality",
    "orthogonal_fraction",
}


def every_figure_also_a_png(events: EventAccumulator, name: str, folder: Path) -> None:
    """Each figure in TensorBoard is a PNG beside the JSON (the same bytes), at every epoch, big enough, not blank."""
    for tag in (tag for tag in events.Tags()["images"] if tag.startswith(f"{name}/")):
        stem = tag.removeprefix(f"{name}/").replace("/", "_")
        pngs = sorted(folder.glob(f"{stem}_epoch_*.png"))
        assert len(pngs) == len(events.Images(tag)), tag
        assert {png.read_bytes() for png in pngs} == {event.encoded_image_string for event in events.Images(tag)}
        for png in pngs:
            image = imread(png)
            assert image.shape[0] >= 300 and image.shape[1] >= 600, (png.name, image.shape)
            assert image[..., :3].std() > 0.02, f"{png.name} is blank"
            assert png.stat().st_mode & 0o044 == 0o044, f"{png.name} is not readable by others"


def fit_with(config: str, *flags: str):
    return main(["fit", "--config", str(CONFIGS / config), *QUIET, *flags])


def test_task_separation_writes_json_png_and_tensorboard(run_dir):
    cli = fit_with(
        "iris.yaml",
        "--trainer.max_epochs",
        "3",
        "--trainer.callbacks",
        "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: 2}}]",
    )
    folder = run_dir / "lightning_logs" / "iris" / "version_0"
    analysis = folder / "analysis" / "task_separation"
    # before training, every 2nd epoch (epoch 1) and the last one (epoch 2)
    written = sorted(path.name for path in analysis.glob("epoch_*.json"))
    assert written == ["epoch_001.json", "epoch_002.json", "epoch_init.json"]
    initial = json.loads((analysis / "epoch_init.json").read_text())
    assert initial["epoch"] == -1 and initial["data"] == "train" and initial["samples"] == 96
    result = json.loads((analysis / "epoch_002.json").read_text())
    assert TASK_SEPARATION_KEYS <= set(result)
    assert result["output_names"] == ["setosa", "versicolor", "virginica"]
    assert len(result["interference"]) == 3 and result["interference"][1][1] == pytest.approx(1, abs=1e-5)
    assert set(result["attribution"]) == {"fc1", "fc2"} and len(result["attribution"]["fc1"]) == 16
    roles = result["roles"]["fc1"]
    assert roles["mono"] + roles["shared"] + roles["dead"] == roles["units"] == 16
    assert not list(analysis.glob(".*"))  # no temporary files left behind

    events = EventAccumulator(str(folder), size_guidance={"images": 0})
    events.Reload()
    every_figure_also_a_png(events, "task_separation", analysis)
    expected = {"interference", "orthogonality", "signed_orthogonality", "attribution/fc1", "roles", "over_epochs"}
    assert {f"task_separation/{tag}" for tag in expected} <= set(events.Tags()["images"])
    scalars = events.Tags()["scalars"]
    assert {
        "task_separation/mean_interference",
        "task_separation/orthogonal_fraction",
        "task_separation/fc1/dead_fraction",
    } <= set(scalars)
    logged = events.Scalars("task_separation/orthogonal_fraction")
    assert [event.value for event in logged][-1] == pytest.approx(result["orthogonal_fraction"])
    assert cli.trainer.state.finished


def test_task_separation_on_regression_and_columns(run_dir):
    fit_with(
        "multimult.yaml",
        "--trainer.max_epochs",
        "1",
        "--data.num_samples",
        "500",
        "--model",
        "ColumNet",
        "--model.hidden",
        "[8]",
        "--model.activations",
        "[relu, tanh]",
    )
    [result_file] = (run_dir / "lightning_logs").rglob("task_separation/epoch_000.json")
    result = json.loads(result_file.read_text())
    assert result["output_names"] == ["x0*x1", "x2*x3"]
    assert {"col1_relu/fc1", "col2_tanh/fc1"} <= set(result["roles"])
    assert set(result["column_roles"]) == {"col1_relu", "col2_tanh"}


def test_activation_analysis_on_mnist_writes_images_json_and_tensorboard(run_dir, data_dir):
    fit_with(
        "fc.yaml",
        "--model.hidden",
        "[64, 32]",
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "100",
        "--trainer.callbacks",
        "[{class_path: zoo.callbacks.ActivationAnalysis, init_args: {max_samples: 500, maximize: 4}}]",
    )
    folder = run_dir / "lightning_logs" / "fc" / "version_0"
    analysis = folder / "analysis" / "activations"
    result = json.loads((analysis / "epoch_000.json").read_text())
    fc1 = result["layers"]["fc1"]
    assert {"dead", "class_profile", "selectivity", "explained_variance", "compression", "report"} <= set(fc1)
    assert len(fc1["class_profile"]) == 64 and len(fc1["class_profile"][0]) == 10
    assert result["layers"]["fc2"]["compression"]["k"] == list(range(1, 33))  # every k of a small layer
    assert result["layers"]["fc1"]["report"].startswith("fc1: 64 units, judged on 500 train samples;")
    assert result["maximized_units"]["output"] == list(range(10)) and len(result["maximized_units"]["fc1"]) == 4
    assert len(result["top_samples"]["fc1"]) == 4 and len(result["top_samples"]["fc1"][0]) == 5

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "histograms": 0, "tensors": 0})
    events.Reload()
    every_figure_also_a_png(events, "activations", analysis)
    for name in ("maximization_fc1", "maximization_output", "compression_fc2", "correlation_fc1", "class_profile_fc2"):
        assert (analysis / f"{name}_epoch_000.png").is_file(), name
    assert {"activations/maximization/output", "activations/class_profile/fc1", "activations/correlation/fc2"} <= set(
        events.Tags()["images"]
    )
    assert {"activations/histogram/fc1", "activations/histogram/fc2"} <= set(events.Tags()["histograms"])
    assert "activations/report/fc1/text_summary" in events.Tags()["tensors"]
    dead = events.Scalars("activations/fc1/dead_fraction")[-1].value
    assert dead == pytest.approx(fc1["dead_fraction"])


def test_activation_analysis_on_tabular_data_maximizes_nothing(run_dir):
    fit_with("iris.yaml", "--trainer.max_epochs", "1")
    [result_file] = (run_dir / "lightning_logs").rglob("activations/epoch_000.json")
    result = json.loads(result_file.read_text())
    assert result["maximized_units"] == {} and set(result["layers"]) == {"fc1", "fc2"}
    assert not list(result_file.parent.glob("maximization_*.png"))  # no images to maximize for 4 features


def test_unknown_layer_is_refused_before_training(run_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        fit_with(
            "iris.yaml",
            "--trainer.callbacks",
            "[{class_path: zoo.callbacks.TaskSeparation, init_args: {layers: [fc1, fc7]}}]",
        )
    assert exit_.value.code == 2
    assert "TaskSeparation: unknown layer 'fc7'; FCNet's hidden layers are: fc1, fc2" in capsys.readouterr().err
    assert not list(run_dir.rglob("*.ckpt"))


def test_bad_schedule_is_refused(run_dir, capsys):
    with pytest.raises(SystemExit):
        fit_with(
            "iris.yaml",
            "--trainer.callbacks",
            "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: 0}}]",
        )
    assert "TaskSeparation: every_n_epochs must be at least 1, got 0" in capsys.readouterr().err


def run_script(script: str, *args: str, monkeypatch, capsys) -> tuple[int, str, str]:
    """A script of scripts/ run in this process, as ``python scripts/<script> args``."""
    monkeypatch.setattr(sys, "argv", [script, *args])
    try:
        runpy.run_path(str(ROOT / "scripts" / script), run_name="__main__")
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_analyze_script_on_a_checkpoint(run_dir, monkeypatch, capsys):
    fit_with("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", "null")
    best = str(run_dir / "lightning_logs" / "iris" / "version_0" / "checkpoints" / "best.ckpt")
    code, out, err = run_script(
        "analyze.py", "task-separation", best, "--json", "out.json", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 0, err
    assert "FCNet on 96 iris train samples" in out
    assert "mean interference" in out and "signed orthogonal" in out and "fc2" in out
    assert TASK_SEPARATION_KEYS <= set(json.loads((run_dir / "out.json").read_text()))

    code, out, err = run_script(
        "analyze.py", "activations", best, "--split", "test", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 0, err
    assert "FCNet on 30 iris test samples" in out and "fc1: 16 units, judged on 30 test samples" in out


def test_an_analysis_that_always_fails_costs_training_nothing_and_ends_the_run_non_zero(run_dir, capsys):
    """Training goes on and every checkpoint is written; the closing summary names the failure; exit 1 (a bug)."""
    broken = "[{class_path: helpers.FailingAnalysis, init_args: {every_n_epochs: 1}}]"
    with pytest.raises(SystemExit) as exit_:
        fit_with("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", broken)
    assert exit_.value.code == 1
    folder = run_dir / "lightning_logs" / "iris" / "version_0"
    assert torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 1
    log = (folder / "analysis" / "failing" / "errors.log").read_text()
    assert "RuntimeError: the analysis broke" in log and "@ epoch 1" in log
    out, err = capsys.readouterr()
    assert "FAILED          failing: the analysis broke (2 attempts, last @ epoch 1)" in out
    assert "zoo: error: every attempt of an analysis failed" in err and "failing (the analysis broke)" in err


def test_layers_are_checked_without_running_the_model(run_dir):
    """A batch-norm model refuses a 1-sample batch in training mode; the layer check needs no batch."""
    callbacks = "[{class_path: zoo.callbacks.TaskSeparation, init_args: {layers: [fc1]}}]"
    cli = fit_with(
        "iris.yaml", "--model.batch_norm", "true", "--trainer.max_epochs", "1", "--trainer.callbacks", callbacks
    )
    analysis = run_dir / "lightning_logs" / "iris" / "version_0" / "analysis" / "task_separation"
    assert set(json.loads((analysis / "epoch_000.json").read_text())["roles"]) == {"fc1"}
    assert cli.trainer.state.finished


@pytest.mark.parametrize("precision", ["64-true", "bf16-true", "bf16-mixed"])
def test_both_analyses_work_in_the_precision_lightning_trains_in(run_dir, precision):
    """The analyses follow the model's precision; a run in 64-true or bf16-true gets their results."""
    light = "{every_n_epochs: null, max_samples: 60, before_training: false}"
    callbacks = f"[{{class_path: zoo.callbacks.TaskSeparation, init_args: {light}}}, " + (
        f"{{class_path: zoo.callbacks.ActivationAnalysis, init_args: {light}}}]"
    )
    cli = fit_with(
        "iris.yaml", "--trainer.max_epochs", "1", "--trainer.precision", precision, "--trainer.callbacks", callbacks
    )
    assert cli.trainer.state.finished
    analysis = run_dir / "lightning_logs" / "iris" / "version_0" / "analysis"
    separation = json.loads((analysis / "task_separation" / "epoch_000.json").read_text())
    activations = json.loads((analysis / "activations" / "epoch_000.json").read_text())
    assert -1 <= separation["summary"]["mean_interference"] <= 1 and separation["samples"] == 60
    assert activations["summary"]["fc1/components_90"] >= 1


def test_runs_that_train_nothing_or_write_nothing_say_so_and_leave_no_folder(run_dir, capsys):
    fit_with("iris.yaml", "--trainer.fast_dev_run", "1")
    assert "fast_dev_run    checked that every step runs; wrote nothing" in capsys.readouterr().out
    assert not (run_dir / "lightning_logs").exists()  # not even an empty version_0
    fit_with("iris.yaml", "--trainer.max_steps", "0")
    out = capsys.readouterr().out
    assert "no step trained (see trainer.max_steps, limit_train_batches, max_time)" in out
    assert not list(run_dir.rglob("*.ckpt")) and not list(run_dir.rglob("analysis"))


def test_a_resumed_run_looks_back_on_the_epochs_it_resumes_and_reads_each_file_once(run_dir, monkeypatch, capsys):
    """Figures over epochs see every earlier result: the first run's from disk once, then from memory."""
    reads, seen = [], run_dir / "histories"  # files: figures may be drawn in other processes, several a pass
    seen.mkdir()
    draw, read = Analysis.figures_for, AnalysisWriter.earlier_results

    def recording(self, result, *, history=None):
        (seen / f"{len(history or []):03d}_{os.getpid()}.json").write_text(json.dumps(history or []))
        return draw(self, result, history=history)

    def counted(self):
        reads.append(self.folder)
        return read(self)

    monkeypatch.setattr(Analysis, "figures_for", recording)
    monkeypatch.setattr(AnalysisWriter, "earlier_results", counted)
    callbacks = ["--trainer.callbacks", "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: 1}}]"]
    fit_with("iris.yaml", "--trainer.max_epochs", "2", *callbacks)
    capsys.readouterr()
    fit_with("iris.yaml", "--trainer.max_epochs", "4", *callbacks, "--ckpt_path", "last")
    out = capsys.readouterr().out  # the closing summary counts the folder's results, the first run's too
    by_length = {}  # a pass's history, as every process drawing that pass saw it
    for path in sorted(seen.iterdir()):
        by_length.setdefault(path.name.split("_")[0], []).append(json.loads(path.read_text()))
    assert all(views.count(views[0]) == len(views) for views in by_length.values())
    histories = [views[0] for _, views in sorted(by_length.items())]
    assert "task_separation  (5 results, last epoch_003.json)" in out, out
    took = r"(\d+(\.\d)? s|\d+ min \d+ s)"  # as zoo.console says it; long where a busy machine makes figures wait
    assert re.search(rf"Done: 4 epochs \(resumed at epoch 2: 2 epochs in {took}\)\.", out), out  # this run's time
    assert [[result["epoch"] for result in history] for history in histories] == [
        [-1],
        [-1, 0],
        [-1, 0, 1],
        [-1, 0, 1, 2],
        [-1, 0, 1, 2, 3],
    ]
    assert len(reads) == 2  # once a run: the resumed one seeded from the first one's files
    folder = run_dir / "lightning_logs" / "iris" / "version_0" / "analysis" / "task_separation"
    on_disk = sorted((json.loads(path.read_text()) for path in folder.glob("epoch_*.json")), key=lambda r: r["epoch"])
    assert histories[-1] == on_disk  # what memory holds is what the files hold
