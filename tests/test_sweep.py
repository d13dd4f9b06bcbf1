"""Sweeps and studies: the schema, trials in one process, rows that are never lost, the report from rows."""

from __future__ import annotations

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import CONFIGS, ROOT
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

from zoo.errors import ZooError, ZooFailure
from zoo.sweep import comparable, expand, read_rows, read_sweep, run_sweep, trial_devices

TINY = {"trainer.max_epochs": 1}


def sweep_file(tmp_path: Path, name: str = "sweep", **spec) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"output": str(tmp_path / f"{name}_out"), **spec}))
    return path


def iris_sweep(tmp_path: Path, name: str = "iris", **extra) -> Path:
    """FCNet of two widths on iris, two seeds: four one-epoch trials."""
    grid = {"model.init_args.hidden": [[8], [16, 16]]}
    spec = {"seeds": [0, 1], "common": TINY, "trials": [{"config": str(CONFIGS / "iris.yaml"), "grid": grid}]}
    return sweep_file(tmp_path, name, **{**spec, **extra})


def sweep_subprocess(sweep: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "scripts" / "sweep.py"), str(sweep), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def rows_so_far(output: Path) -> list[dict]:
    """The study's rows, or none while its first worker is still making it."""
    try:
        return read_rows(output) if (output / "study.db").is_file() else []
    except ZooFailure:
        return []


IRIS = [{"config": "configs/iris.yaml"}]
SCHEMA_ERRORS = [
    ({"grids": {}, "trials": []}, "unknown key 'grids'; accepted: output, seeds, batch_seeds"),
    ({"trials": [{**IRIS[0], "grid": {"model.hidden": 8}}]}, "grid.model.hidden must be a list, got int 8"),
    ({"seeds": 3, "trials": IRIS}, "seeds must be a list, got int 3"),
    ({"trials": IRIS[0]}, "trials must be a list, got dict"),
    ({"trials": [{"config": "configs/nothere.yaml"}]}, "trials[1].config 'configs/nothere.yaml' not found"),
    ({"trials": [{**IRIS[0], "grids": {}}]}, "trials[1]: unknown key 'grids'; accepted: config, grid, name"),
    ({"analyses": {"task_separation": {"split": "holdout"}}, "trials": IRIS}, "'holdout'; accepted: train, val, test"),
    ({"analyses": {"dead": {}}, "trials": IRIS}, "unknown key 'dead'; accepted: task_separation, activations"),
    ({"seeds": [0, 2], "batch_seeds": True, "trials": IRIS}, "give consecutive seeds, got [0, 2]"),
    ({"seeds": {"first": 0}, "trials": IRIS}, "seeds as a mapping takes first and count"),
    ({"seeds": [0]}, "lists no trials"),
    (  # drawn nothing without a word
        {"figures": {"distributions": ["task_separation.pair/a_b/orthogonalty"]}, "trials": IRIS},
        "figures.distributions: 'task_separation.pair/a_b/orthogonalty' is no number an analysis declares",
    ),
    ({"figures": {"over_epochs": ["activations.dead"]}, "trials": IRIS}, "the numbers: task_separation.mean_inter"),
]


@pytest.mark.parametrize(("spec", "message"), SCHEMA_ERRORS)
def test_the_sweep_file_is_checked_before_anything_runs(tmp_path, monkeypatch, spec, message):
    monkeypatch.chdir(ROOT)
    with pytest.raises(ZooError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        read_sweep(sweep_file(tmp_path, **spec))


def test_trials_have_readable_stable_names(tmp_path):
    spec = read_sweep(iris_sweep(tmp_path))
    trials = expand(spec, "out")
    assert [trial.id for trial in trials] == [  # seed by seed: a study stopped half-way still holds pairs
        "iris-hidden8-s0",
        "iris-hidden16x16-s0",
        "iris-hidden8-s1",
        "iris-hidden16x16-s1",
    ]
    assert trials[1].label == "iris hidden=[16, 16] seed 0"
    named = expand(read_sweep(iris_sweep(tmp_path, trials=[{"config": str(CONFIGS / "iris.yaml"), "name": "MLP"}])), "")
    assert named[1].label == "MLP seed 1"
    batched = expand(read_sweep(iris_sweep(tmp_path, seeds={"first": 3, "count": 10}, batch_seeds=True)), "out")
    assert [trial.id for trial in batched] == ["iris-hidden8-s3-12", "iris-hidden16x16-s3-12"]
    assert batched[0].seeds == tuple(range(3, 13))


def test_a_regression_study_end_to_end(tmp_path, data_dir):
    """multimult with analyses: rows with R² and the analyses' numbers, a summary with n, figures, HParams."""
    spec = {
        "seeds": [0, 1],
        "common": {"trainer.max_epochs": 2, "data.num_samples": 600},
        "analyses": {"task_separation": {"split": "test"}, "activations": {"split": "test"}},
        "trials": [{"config": str(CONFIGS / "multimult.yaml")}],
    }
    path = sweep_file(tmp_path, "multimult", **spec)
    rows = run_sweep(read_sweep(path), tmp_path / "multimult_out", say=lambda line: None)
    assert len(rows) == 2 and {row["seed"] for row in rows} == {0, 1}
    for row in rows:
        assert row["metric"] == "r2" and {"val_r2", "test_r2", "test_mse", "val_loss"} <= set(row)
        assert -1 <= row["task_separation.pair/x0*x1_x2*x3/signed_orthogonality"] <= 1
        assert {
            "task_separation.mean_interference",
            "activations.fc1/dead_fraction",
            "activations.fc2/components_90",
        } <= set(row)
        final = Path(row["run_dir"]) / "analysis" / "final" / "task_separation.json"
        assert json.loads(final.read_text())["pairs"][0]["signed_orthogonality"] == pytest.approx(
            row["task_separation.pair/x0*x1_x2*x3/signed_orthogonality"]
        )
    folder = tmp_path / "multimult_out"
    summary = (folder / "summary.md").read_text()
    assert "n=2)" in summary and "Internal structure, side by side" in summary
    names = {path.name for path in folder.glob("*.png")}
    assert {"r2_vs_params.png", "r2_vs_train.png", "distribution_pair_x0_x1_x2_x3_signed_orthogonality.png"} <= names
    runs = EventMultiplexer()
    runs.AddRunsFromDirectory(str(folder / "runs"))
    runs.Reload()
    hparams = runs.PluginRunToTagToContent("hparams")
    sessions = [run for run, tags in hparams.items() if "_hparams_/session_start_info" in tags]
    assert len(sessions) == 2 and [run for run, tags in hparams.items() if "_hparams_/experiment" in tags] == ["."]
    experiment = HParamsPluginData.FromString(hparams["."]["_hparams_/experiment"]).experiment  # one for the study
    columns = [info.name.tag for info in experiment.metric_infos]
    assert columns[:3] == ["hp/test_r2", "hp/val_r2", "hp/task_separation/mean_interference"]
    assert {"hp/train_seconds", "hp/activations/mean/dead_fraction"} <= set(columns)
    assert "hp/task_separation/pair/mean/signed_orthogonality" in columns
    infos = {info.name: info.differs for info in experiment.hparam_infos}
    assert infos == {"family": False, "epochs": False, "seed": True, "config": False}
    run = sessions[0]
    start = HParamsPluginData.FromString(hparams[run]["_hparams_/session_start_info"]).session_start_info
    row = next(row for row in rows if row["trial"] in run)
    assert start.hparams["seed"].number_value == row["seed"] and start.hparams["epochs"].number_value == 2
    last = {tag: runs.Scalars(run, tag)[-1].value for tag in runs.Runs()[run]["scalars"]}
    assert last["hp/test_r2"] == pytest.approx(row["test_r2"], abs=1e-6)
    assert last["task_separation/mean_interference"] == pytest.approx(row["task_separation.mean_interference"])
    assert any(tag.startswith("task_separation/") for tag in runs.Runs()[run]["images"])  # the trial's figures


def test_a_trial_keeps_the_callbacks_that_change_training(tmp_path):
    """A config's SET trains in its trial; its analyses during training are left to the sweep's ``analyses``."""
    config = yaml.safe_load((CONFIGS / "iris.yaml").read_text())
    config["model"] = {"class_path": "zoo.models.SparseNet", "init_args": {"hidden": [16], "density": 0.5}}
    config["trainer"]["callbacks"] = [
        {"class_path": "zoo.callbacks.TaskSeparation", "init_args": {"every_n_epochs": 1}},
        {"class_path": "zoo.callbacks.SET", "init_args": {"zeta": 0.3}},
    ]
    (tmp_path / "set_config.yaml").write_text(yaml.safe_dump(config))
    spec = {
        "seeds": [0],
        "common": {"trainer.max_epochs": 2},
        "trials": [{"config": str(tmp_path / "set_config.yaml")}],
    }
    rows = run_sweep(read_sweep(sweep_file(tmp_path, "set", **spec)), tmp_path / "set_out", say=lambda line: None)
    analysis = Path(rows[0]["run_dir"]) / "analysis"
    assert sorted(path.name for path in (analysis / "set").glob("*.json")) == ["epoch_000.json", "epoch_init.json"]
    assert json.loads((analysis / "set" / "epoch_000.json").read_text())["changed_fraction"] > 0
    assert not (analysis / "task_separation").exists()


def test_a_batch_of_seeds_is_one_population_with_a_row_per_member(tmp_path):
    callbacks = [{"class_path": "zoo.callbacks.TaskSeparation", "init_args": {"every_n_epochs": 1}}]
    spec = {
        "seeds": {"first": 4, "count": 3},
        "batch_seeds": True,
        "common": {"trainer.max_epochs": 2, "trainer.callbacks": callbacks},
        "analyses": {"task_separation": {"split": "test"}},
        "trials": [{"config": str(CONFIGS / "iris.yaml")}],
    }
    rows = run_sweep(read_sweep(sweep_file(tmp_path, "pop", **spec)), tmp_path / "pop_out", say=lambda line: None)
    assert [(row["seed"], row["member"], row["batched"]) for row in rows] == [(4, 0, 3), (5, 1, 3), (6, 2, 3)]
    assert len({row["test_acc"] for row in rows} | {row["task_separation.mean_interference"] for row in rows}) > 2
    history = rows[1]["history"]
    assert history["epoch"] == [-1, 0, 1] and len(history["task_separation.pair/setosa_versicolor/interference"]) == 3
    assert (tmp_path / "pop_out" / "over_epochs_mean_interference.png").stat().st_size > 5000
    table = next(line for line in (tmp_path / "pop_out" / "summary.md").read_text().splitlines() if "(iris) |" in line)
    train_seconds = table.split("|")[5].strip()  # the batch's one run: one time, not three agreeing ones
    assert train_seconds == f"{rows[0]['train_seconds']:.1f} (n=1)", table


def test_report_redraws_summary_and_figures_from_the_rows_alone(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "iris_out"
    rows = run_sweep(read_sweep(iris_sweep(tmp_path)), folder, say=lambda line: None, threads=1)
    assert [row["threads"] for row in rows] == [1] * 4  # what a row needs to reproduce bit for bit
    summary = (folder / "summary.md").read_text()
    assert "| FCNet hidden=[16, 16] (iris) |" in summary  # configurations named as the console names trials
    for path in [folder / "summary.md", folder / "results.csv", *folder.glob("*.png")]:
        path.unlink()
    monkeypatch.setattr(sys, "argv", ["sweep.py", "report", str(folder)])
    runpy.run_path(str(ROOT / "scripts" / "sweep.py"), run_name="__main__")
    assert "4 rows" in capsys.readouterr().out
    assert (folder / "summary.md").read_text() == summary
    assert (folder / "results.csv").is_file() and (folder / "acc_vs_params.png").stat().st_size > 5000


def test_a_killed_sweep_restarts_to_the_same_rows(tmp_path):
    reference = sweep_subprocess(iris_sweep(tmp_path, "straight"))
    killed = sweep_subprocess(iris_sweep(tmp_path, "killed"))
    deadline = time.monotonic() + 120
    while not rows_so_far(tmp_path / "killed_out") and time.monotonic() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    assert killed.wait(timeout=30) == -signal.SIGKILL
    assert 1 <= len(read_rows(tmp_path / "killed_out")) < 4  # killed mid-sweep, with whole rows only
    restarted = sweep_subprocess(iris_sweep(tmp_path, "killed"))
    assert restarted.wait(timeout=300) == 0, restarted.stderr.read()
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    console = reference.stdout.read().splitlines()  # a line when each trial starts and ends; no run's own summary
    assert sum(line.startswith("trial ") for line in console) == 8 and not any("Done:" in line for line in console)
    assert comparable(read_rows(tmp_path / "killed_out")) == comparable(read_rows(tmp_path / "straight_out"))


def test_two_sweep_processes_on_one_folder_run_each_trial_once(tmp_path):
    path = iris_sweep(tmp_path, "shared")
    first, second = sweep_subprocess(path), sweep_subprocess(path)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.wait(timeout=300) == 0, second.stderr.read()
    rows = read_rows(tmp_path / "shared_out")
    assert sorted(row["trial"] for row in rows) == sorted(trial.id for trial in expand(read_sweep(path), "x"))
    runs = sorted(
        path.relative_to(tmp_path / "shared_out" / "runs") for path in (tmp_path / "shared_out" / "runs").glob("*/*")
    )
    assert [run.name for run in runs] == ["version_0"] * 4  # claimed once: no trial ran twice


def test_a_failing_trial_costs_the_others_nothing(tmp_path):
    """Under --jobs 2, one trial refuses its hidden width; the other three rows are kept, the exit code says so."""
    grid = {"model.init_args.hidden": [[8], [0], [16]]}
    spec = {"seeds": [0], "common": TINY, "trials": [{"config": str(CONFIGS / "iris.yaml"), "grid": grid}]}
    run = sweep_subprocess(sweep_file(tmp_path, "failing", **spec), "--jobs", "2")
    out, error = run.communicate(timeout=300)
    assert run.returncode == 2, error
    assert "1 trial(s) failed" in error and "iris-hidden0-s0: model.hidden must be positive integers" in error
    assert sorted(row["trial"] for row in read_rows(tmp_path / "failing_out")) == [
        "iris-hidden16-s0",
        "iris-hidden8-s0",
    ]
    summary = (tmp_path / "failing_out" / "summary.md").read_text()  # the failed configuration is not missing
    assert "## Trials that failed (1: no rows above)\n\n- `iris-hidden0-s0`: model.hidden must be positive" in summary
    again = sweep_subprocess(sweep_file(tmp_path, "failing", **spec))  # not retried unless asked
    assert again.wait(timeout=300) == 2 and "iris-hidden0-s0" in again.stderr.read()
    assert "trial 2/3" not in again.stdout.read()


def test_a_search_follows_the_tasks_own_metric(tmp_path):
    from zoo.sweep.search import run_search

    spec = {
        "common": {"trainer.max_epochs": 1, "data.num_samples": 300},
        "search": {
            "config": str(CONFIGS / "multimult.yaml"),
            "trials": 2,
            "space": {"optimizer.init_args.lr": {"float": [1.0e-3, 1.0e-2], "log": True}},
        },
    }
    rows = run_search(
        read_sweep(sweep_file(tmp_path, "search", **spec)), tmp_path / "search_out", say=lambda line: None
    )
    import optuna

    study = optuna.load_study(study_name="search_out", storage=f"sqlite:///{tmp_path / 'search_out' / 'study.db'}")
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # regression: val/loss down
    assert sorted(trial.value for trial in study.trials) == sorted(row["val_loss"] for row in rows)
    assert study.metric_names == ["val loss"]  # what the dashboard calls a trial's value


def test_bad_search_space(tmp_path):
    from zoo.sweep.search import run_search

    spec = {"search": {"config": str(CONFIGS / "iris.yaml"), "space": {"optimizer.init_args.lr": {"uniform": [0, 1]}}}}
    with pytest.raises(
        ZooError, match=r"search space for optimizer.init_args.lr: give exactly one of float, int, categorical"
    ):
        run_search(read_sweep(sweep_file(tmp_path, "bad", **spec)), tmp_path / "out")
    spec["search"]["space"] = {"optimizer.init_args.lr": {"float": 0.1}}
    with pytest.raises(ZooError, match=r"search space for optimizer.init_args.lr: float takes a list \[low, high\]"):
        run_search(read_sweep(sweep_file(tmp_path, "bad_bounds", **spec)), tmp_path / "out")
    for option, said in ({"step": 2}, "float takes float and log, not step"), ({"logs": True}, "not logs"):
        spec["search"]["space"] = {"optimizer.init_args.lr": {"float": [1e-3, 1e-1], "log": True, **option}}
        with pytest.raises(ZooError, match=f"search space for optimizer.init_args.lr: .*{said}"):  # was dropped
            run_search(read_sweep(sweep_file(tmp_path, f"bad_{said[-4:]}", **spec)), tmp_path / "out")


def test_trials_take_one_device_each_and_the_gpus_in_turn():
    assert [trial_devices(slot, gpus=0) for slot in range(3)] == ["1", "1", "1"]  # CPU
    assert [trial_devices(slot, gpus=1) for slot in range(3)] == ["1", "1", "1"]  # several on the one GPU
    assert [trial_devices(slot, gpus=3) for slot in range(5)] == ["[0]", "[1]", "[2]", "[0]", "[1]"]


def test_a_grid_file_given_search_is_refused_before_its_output_is_made(tmp_path):
    run = sweep_subprocess(iris_sweep(tmp_path), "--search")
    out, error = run.communicate(timeout=120)
    assert run.returncode == 2 and error.strip().endswith("has no search: block; run it without --search"), error
    assert not (tmp_path / "iris_out").exists()  # not even a copy of the sweep file
