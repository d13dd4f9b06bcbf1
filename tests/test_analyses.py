"""An analysis is declared once: a new one (tests/weight_norm_analysis.py) works everywhere with nothing else changed.

And figures come from a result anywhere: ``scripts/analyze.py`` on a checkpoint writes the
files a run writes, for a single model and for each member of a population.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_callbacks import fit_with, run_script

import zoo
from zoo.analyses import figures_for, get_analysis, list_analyses, register_analysis
from zoo.analyses.declaration import _ANALYSES
from zoo.checkpoints import load_model
from zoo.console import DashboardLayout
from zoo.errors import ZooError
from zoo.sweep import read_sweep, run_sweep

LIGHT = "max_samples: 40, every_n_epochs: null, before_training: false"  # once, after the last epoch


@pytest.fixture()
def weight_norms():
    """tests/weight_norm_analysis.py's declaration, registered for one test."""
    from weight_norm_analysis import WEIGHT_NORMS

    yield register_analysis(WEIGHT_NORMS)  # again: a test before may have unregistered it
    _ANALYSES.pop("weight_norms", None)


def test_a_new_analysis_runs_as_a_callback_from_the_cli(weight_norms, run_dir):
    callbacks = (
        "[{class_path: zoo.callbacks.RunAnalysis, init_args: "
        "{analysis: weight_norm_analysis.WEIGHT_NORMS, options: {norm: spectral}}}]"
    )
    cli = fit_with("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", callbacks)
    folder = run_dir / "lightning_logs" / "iris" / "version_0"
    result = json.loads((folder / "analysis" / "weight_norms" / "epoch_001.json").read_text())
    spectral = torch.linalg.matrix_norm(cli.model.head.weight.detach(), ord=2).item()
    assert result["norm"] == "spectral" and result["norms"]["head"] == pytest.approx(spectral)
    assert result["summary"]["head/norm"] == pytest.approx(spectral)
    assert (folder / "analysis" / "weight_norms" / "norms_epoch_001.png").stat().st_size > 5000
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert "weight_norms/norms" in events.Tags()["images"]
    assert events.Scalars("weight_norms/head/norm")[-1].value == pytest.approx(spectral)
    assert DashboardLayout(("acc",)).layout()["4 weight norms"] == {
        "weight norm per layer": ["Multiline", [r"^weight_norms/.*/norm$"]]
    }


def test_a_new_analysis_refuses_an_unknown_option(weight_norms, run_dir, capsys):
    callbacks = "[{class_path: zoo.callbacks.RunAnalysis, init_args: {analysis: weight_norms, options: {ord: 3}}}]"
    with pytest.raises(SystemExit) as exit_:
        fit_with("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks", callbacks)
    assert exit_.value.code == 2
    assert "RunAnalysis: options: unknown key 'ord'; accepted: norm" in capsys.readouterr().err


def test_a_new_analysis_gives_sweep_columns_and_a_summary_row(weight_norms, tmp_path):
    spec = {
        "output": str(tmp_path / "out"),
        "seeds": [0, 1],
        "common": {"trainer.max_epochs": 1},
        "analyses": {"weight_norm_analysis.WEIGHT_NORMS": {"norm": "frobenius"}},
        "trials": [{"config": str(CONFIGS / "iris.yaml")}],
    }
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    rows = run_sweep(read_sweep(tmp_path / "sweep.yaml"), tmp_path / "out", say=lambda line: None)
    for row in rows:
        model = load_model(row["run_dir"] + "/checkpoints/best.ckpt")
        assert row["weight_norms.head/norm"] == pytest.approx(torch.linalg.matrix_norm(model.head.weight).item())
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| weight norm (mean over layers) |" in summary
    assert (tmp_path / "out" / "distribution_head_norm.png").is_file()


def test_figures_come_from_a_result_anywhere(weight_norms):
    model = zoo.create_model("FCNet", hidden=[8], input_shape=(4,), num_outputs=3)
    result = weight_norms.run(model, None, weight_norms.options(), layers=None, cache={})
    assert list(figures_for(result, "weight_norms")) == ["norms"]
    assert [analysis.name for analysis in list_analyses()][-1] == "weight_norms"
    assert get_analysis("weight_norms") is weight_norms


def test_analyze_writes_the_files_a_run_writes(run_dir, monkeypatch, capsys):
    """The same file names as the run's analysis folder, and the same JSON."""
    callbacks = f"[{{class_path: zoo.callbacks.TaskSeparation, init_args: {{{LIGHT}}}}}]"
    fit_with("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", callbacks)
    run = run_dir / "lightning_logs" / "iris" / "version_0"
    last = str(run / "checkpoints" / "last.ckpt")
    board = str(run_dir / "board")
    code, out, err = run_script(
        "analyze.py", "task-separation", last, "--max-samples", "40", "--cpu", "--tensorboard", board,
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    events = EventAccumulator(board, size_guidance={"images": 0, "scalars": 0})
    events.Reload()
    assert {"task_separation/interference", "task_separation/roles"} <= set(events.Tags()["images"])
    assert events.Scalars("task_separation/mean_interference")[0].step == 1
    written = run / "analysis_last" / "task_separation"
    ran = run / "analysis" / "task_separation"
    assert sorted(path.name for path in written.iterdir()) == sorted(path.name for path in ran.iterdir())
    assert json.loads((written / "epoch_001.json").read_text()) == json.loads((ran / "epoch_001.json").read_text())
    assert "mean interference" in out and f"wrote {written / 'epoch_001.json'}" in out
    code, out, err = run_script(  # a single model is its own member 0, and its results go where they went above
        "analyze.py", "task-separation", last, "--max-samples", "40", "--cpu", "--member", "0", "--out", board,
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert (Path(board) / "task_separation" / "epoch_001.json").is_file() and "member_000" not in out


def test_analyze_a_population_member_by_member_or_one(run_dir, monkeypatch, capsys):
    callbacks = f"[{{class_path: zoo.callbacks.ActivationAnalysis, init_args: {{{LIGHT}, layers: [fc1]}}}}]"
    fit_with("iris.yaml", "--trainer.max_epochs", "1", "--population", "2", "--trainer.callbacks", callbacks)
    run = run_dir / "lightning_logs" / "iris" / "version_0"
    last = str(run / "checkpoints" / "last.ckpt")
    light = ("--max-samples", "40", "--layers", "fc1")
    code, out, err = run_script("analyze.py", "activations", last, *light, monkeypatch=monkeypatch, capsys=capsys)
    assert code == 0, err
    for member in (0, 1):
        written = run / "analysis_last" / "activations" / f"member_{member:03d}" / "epoch_000.json"
        ran = run / "analysis" / "activations" / f"member_{member:03d}" / "epoch_000.json"
        assert json.loads(written.read_text()) == json.loads(ran.read_text())
    code, out, err = run_script(
        "analyze.py", "activations", last, "--member", "1", "--out", str(run_dir / "one"), *light,
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    one = run_dir / "one" / "activations" / "member_001" / "epoch_000.json"
    assert json.loads(one.read_text())["layers"] == json.loads(ran.read_text())["layers"]
    code, out, err = run_script(
        "analyze.py", "activations", last, "--member", "5", monkeypatch=monkeypatch, capsys=capsys
    )
    assert code == 2 and err.startswith("analyze: error: ") and "member 5 does not exist" in err


def test_analyze_refuses_a_missing_checkpoint_in_one_line(run_dir, monkeypatch, capsys):
    code, out, err = run_script("analyze.py", "activations", "nothere.ckpt", monkeypatch=monkeypatch, capsys=capsys)
    assert code == 2 and err.strip() == "analyze: error: checkpoint not found: nothere.ckpt"


def test_samples_and_names_that_do_not_fit_the_model_are_refused():
    """Fewer targets were read as fewer samples, too few names dropped the pairs: both without a word."""
    from zoo.analysis import activation_analysis, task_separation
    from zoo.analysis.members import task_separation_of_members
    from zoo.models import FCNet, Population

    model = FCNet(hidden=[4], input_shape=(4,), num_outputs=3)
    x, y = torch.randn(20, 4), torch.arange(20) % 3
    for analysis in (task_separation, activation_analysis):
        with pytest.raises(ZooError, match="20 inputs and 10 targets; give one target per input"):
            analysis(model, x, y[:10])
        with pytest.raises(ZooError, match="1 output names for the model's 3 outputs; name each once"):
            analysis(model, x, y, ["a"])
    population = Population("FCNet", size=2, member={"hidden": [4]}, input_shape=(4,), num_outputs=3)
    with pytest.raises(ZooError, match="20 inputs and 19 targets"):
        task_separation_of_members(population, x, y[:19])


def test_a_misspelt_normalization_or_split_is_refused():
    from zoo.data import ZooDataModule

    with pytest.raises(ZooError, match="data.normalize must be 'standard' or 'none', got 'minmax'"):
        ZooDataModule("iris", normalize="minmax")
    with pytest.raises(ZooError, match="no split 'validation'; the splits are 'train', 'val' and 'test'"):
        ZooDataModule("iris").split("validation")


def test_a_model_without_the_contract_is_told_what_it_lacks():
    from zoo.analysis import activation_analysis, task_separation

    x, y = torch.randn(8, 4), torch.arange(8) % 3
    for analysis in (task_separation, activation_analysis):
        with pytest.raises(ZooError, match="this Linear has no probes, forward_with_hidden, analysis_mode, task"):
            analysis(torch.nn.Linear(4, 3), x, y)
