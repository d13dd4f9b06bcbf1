"""Sweeps: a small grid on iris, run in-process, in subprocesses, killed and restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, ROOT
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from zoo.errors import ZooError
from zoo.sweep import comparable, load_sweep, read_results, run_sweep, trial_devices


@pytest.fixture
def sweep_file(tmp_path) -> Path:
    """FCNet (two widths) and ColumNet on iris, two seeds: six trials of two epochs."""
    iris = (CONFIGS / "iris.yaml").read_text()
    columnet = iris.replace("zoo.models.FCNet", "zoo.models.ColumNet").replace(
        "activation: relu", "activations: [relu, tanh]"
    )
    (tmp_path / "iris_columnet.yaml").write_text(columnet)
    spec = {
        "output": str(tmp_path / "out"),
        "seeds": [0, 1],
        "common": {"trainer.max_epochs": 2},
        "trials": [
            {"config": str(CONFIGS / "iris.yaml"), "grid": {"model.init_args.hidden": [[8], [16, 16]]}},
            {"config": str(tmp_path / "iris_columnet.yaml")},
        ],
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_subprocess(sweep: Path, output: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "sweep.py"), str(sweep), "--output", str(output), *extra],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_grid_expands_configs_overrides_and_seeds(sweep_file):
    trials = load_sweep(sweep_file)
    assert len(trials) == 6 and len({trial.id for trial in trials}) == 6
    assert trials[0].flags() == ["--trainer.max_epochs=2", "--model.init_args.hidden=[8]"]
    assert load_sweep(sweep_file)[3].id == trials[3].id  # ids are stable


def test_sweep_writes_results_summary_plots_and_hparams(sweep_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = run_sweep(load_sweep(sweep_file), report=lambda message: None)
    assert not (tmp_path / "config.yaml").exists()  # nothing lands where the sweep was started
    assert (Path(rows[0]["run_dir"]) / "test" / "config.yaml").exists()  # the test step's config stays with its trial
    folder = Path(yaml.safe_load(sweep_file.read_text())["output"])
    assert len(rows) == 6
    assert {row["family"] for row in rows} == {"FCNet", "ColumNet"}
    small = next(row for row in rows if row["overrides"] == '{"model.init_args.hidden": [8]}')
    assert int(small["params_nonzero"]) == 4 * 8 + 8 + 8 * 3 + 3
    for row in rows:
        assert (
            0 <= float(row["test_acc"]) <= 1
            and float(row["train_seconds"]) > 0
            and float(row["train_samples_per_second"]) > 0
        )
    summary = (folder / "summary.md").read_text()
    assert summary.count("| FCNet |") == 2 and summary.count("| ColumNet |") == 1 and "±" in summary
    for plot in ("accuracy_vs_parameters.png", "accuracy_vs_train_time.png"):
        assert (folder / plot).stat().st_size > 5000
    runs = EventMultiplexer()
    runs.AddRunsFromDirectory(str(folder / "runs"))
    runs.Reload()
    hparams = runs.PluginRunToTagToContent("hparams")  # what TensorBoard's HParams dashboard reads
    assert len(hparams) == 6 and all("_hparams_/experiment" in tags for tags in hparams.values())


def test_killed_sweep_restarts_to_the_same_rows(sweep_file, tmp_path):
    reference = sweep_subprocess(sweep_file, tmp_path / "straight")
    killed = sweep_subprocess(sweep_file, tmp_path / "killed")
    results = tmp_path / "killed" / "results.csv"
    deadline = time.monotonic() + 120
    while not results.exists() and time.monotonic() < deadline and killed.poll() is None:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    partial = read_results(tmp_path / "killed")
    assert 1 <= len(partial) < 6  # killed mid-sweep, with whole rows only

    assert sweep_subprocess(sweep_file, tmp_path / "killed").wait(timeout=300) == 0
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    finished = read_results(tmp_path / "killed")
    assert len(finished) == 6
    assert comparable(finished) == comparable(read_results(tmp_path / "straight"))


def test_parallel_jobs_finish_every_trial(sweep_file, tmp_path):
    run = sweep_subprocess(sweep_file, tmp_path / "parallel", "--jobs", "2")
    assert run.wait(timeout=300) == 0, run.stderr.read()
    rows = read_results(tmp_path / "parallel")
    assert sorted(row["trial"] for row in rows) == sorted(trial.id for trial in load_sweep(sweep_file))


def test_sweep_file_that_is_not_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("trials: [config: {")
    with pytest.raises(ZooError, match="broken.yaml: not valid YAML"):
        load_sweep(path)
    with pytest.raises(ZooError, match="sweep file not found"):
        load_sweep(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"trials": [{"config": "configs/nothere.yaml"}]}, "trial config 'configs/nothere.yaml' not found"),
        ({"seeds": [0]}, "lists no trials"),
        ({"trails": []}, "unknown key 'trails'; accepted: output, seeds, common, trials"),
    ],
)
def test_bad_sweep_files(tmp_path, spec, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ZooError, match=message):
        load_sweep(path)


def test_optuna_search_on_sqlite_resumes_the_study(tmp_path):
    from zoo.sweep import run_search  # optuna comes with the dev extra

    spec = {
        "output": str(tmp_path / "search"),
        "common": {"trainer.max_epochs": 2},
        "search": {
            "config": str(CONFIGS / "iris.yaml"),
            "trials": 3,
            "space": {
                "model.init_args.hidden": {"categorical": [[4], [16, 16]]},
                "optimizer.init_args.lr": {"float": [1.0e-3, 1.0e-1], "log": True},
            },
        },
    }
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(spec))
    rows = run_search(path, report=lambda message: None)
    assert len(rows) == 3 and (tmp_path / "search" / "study.db").stat().st_size > 0
    for row in rows:
        overrides = yaml.safe_load(row["overrides"])
        assert (
            overrides["model.init_args.hidden"] in ([4], [16, 16])
            and 1e-3 <= overrides["optimizer.init_args.lr"] <= 0.1
        )

    spec["search"]["trials"] = 4  # a restart, or a second worker, continues the same study
    path.write_text(yaml.safe_dump(spec))
    assert len(run_search(path, report=lambda message: None)) == 4


def test_bad_search_space(tmp_path):
    from zoo.sweep import run_search

    spec = {"search": {"config": str(CONFIGS / "iris.yaml"), "space": {"optimizer.init_args.lr": {"uniform": [0, 1]}}}}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(
        ZooError, match=r"search space for optimizer.init_args.lr: give exactly one of float, int, categorical"
    ):
        run_search(path, output=tmp_path / "out")


def test_trials_take_one_device_each_and_the_gpus_in_turn():
    assert [trial_devices(slot, gpus=0) for slot in range(3)] == ["1", "1", "1"]  # CPU
    assert [trial_devices(slot, gpus=1) for slot in range(3)] == ["1", "1", "1"]  # several on the one GPU
    assert [trial_devices(slot, gpus=3) for slot in range(5)] == ["[0]", "[1]", "[2]", "[0]", "[1]"]
