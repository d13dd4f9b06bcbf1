"""docs/walkthrough.ipynb runs, top to bottom, on a run and a study made here: a notebook that never rots."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import yaml
from conftest import CONFIGS
from nbclient import NotebookClient

from zoo.cli import main
from zoo.sweep import read_sweep, run_sweep

NOTEBOOK = Path(__file__).resolve().parent.parent / "docs" / "walkthrough.ipynb"
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
ANALYSIS = "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: 1, before_training: true}}]"


def test_the_walkthrough_runs_on_a_finished_run_and_study(run_dir, monkeypatch):
    cli = main(["fit", "--config", str(CONFIGS / "iris.yaml"), "--trainer.max_epochs", "2", *QUIET,
                "--trainer.callbacks", ANALYSIS])  # fmt: skip
    spec = {
        "output": str(run_dir / "study"),
        "seeds": [0, 1],
        "batch_seeds": True,
        "common": {"trainer.max_epochs": 1},
        "analyses": {"task_separation": {"split": "test"}},
        "trials": [{"config": str(CONFIGS / "iris.yaml")}],
    }
    (run_dir / "study.yaml").write_text(yaml.safe_dump(spec))
    run_sweep(read_sweep(run_dir / "study.yaml"), run_dir / "study", say=lambda line: None)
    monkeypatch.setenv("ZOO_RUN", cli.trainer.log_dir)
    monkeypatch.setenv("ZOO_STUDY", str(run_dir / "study"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(NOTEBOOK.parent.parent), os.environ.get("PYTHONPATH", "")]))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    started = time.perf_counter()
    NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(run_dir)}}
    ).execute()
    seconds = time.perf_counter() - started
    assert seconds < 40, seconds  # the notebook itself, a kernel's start included (~10 s on a quiet laptop)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    text = "".join(output.get("text", "") for output in outputs)
    assert "epoch  -1: mean interference" in text and "epoch   1: mean interference" in text
    assert "2 seeds, test acc" in text and "FCNet seed 0" in text
    images = [output for output in outputs if "image/png" in output.get("data", {})]
    assert len(images) >= 3  # two redrawn figures and the comparison
