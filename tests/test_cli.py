"""The real entry point, in-process (``main(args)``) and as ``python -m zoo`` subprocesses."""

from __future__ import annotations

import csv
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, ROOT
from pytorch_lightning.callbacks import TQDMProgressBar
from pytorch_lightning.core.saving import load_hparams_from_yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from zoo.cli import PROGRESS_BAR_REFRESH_STEPS, main

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def fit(config: str, *extra: str):
    return main(["fit", "--config", str(CONFIGS / config), *QUIET, *extra])


def zoo_subprocess(*args: str, cwd, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "zoo", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("config", sorted(path.name for path in CONFIGS.glob("*.yaml")))
def test_every_config_under_fast_dev_run(config, run_dir, data_dir):
    light = (  # both analyses, on fewer samples, without activation maximization (tests/test_activations.py)
        "[{class_path: zoo.callbacks.TaskSeparation, init_args: {max_samples: 300}},"
        " {class_path: zoo.callbacks.ActivationAnalysis, init_args: {max_samples: 300, maximize: 0}}]"
    )
    cli = fit(config, "--trainer.fast_dev_run", "2", "--trainer.callbacks", light)
    assert cli.trainer.state.finished
    assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])
    assert not list(run_dir.rglob("*.*"))  # a check that everything runs: no file written, as Lightning does


def test_fit_writes_a_complete_run_folder(run_dir):
    cli = fit("iris.yaml", "--trainer.max_epochs", "3")
    log_dir = run_dir / "lightning_logs" / "iris" / "version_0"
    assert Path(cli.trainer.log_dir).resolve() == log_dir

    saved = yaml.safe_load((log_dir / "config.yaml").read_text())
    assert saved["model"]["init_args"]["hidden"] == [16, 16]
    assert saved["data"]["dataset"] == "iris"
    assert saved["checkpoint"]["filename"] == "best"
    checkpoint = cli.trainer.checkpoint_callback
    assert (checkpoint.monitor, checkpoint.mode) == ("val/acc", "max")  # linked from the dataset's task

    environment = json.loads((log_dir / "environment.json").read_text())
    assert environment["packages"]["torch"] == torch.__version__ and environment["git"]["commit"]
    assert {path.name for path in (log_dir / "checkpoints").iterdir()} == {"best.ckpt", "last.ckpt"}
    best = torch.load(log_dir / "checkpoints" / "best.ckpt", weights_only=False)
    hyper = best["hyper_parameters"]
    assert (hyper["hidden"], hyper["input_shape"], hyper["num_outputs"]) == (
        [16, 16],
        (4,),
        3,
    )  # the last two linked from data

    events = EventAccumulator(str(log_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/acc", "val/loss", "val/acc"} <= scalars
    val_acc = events.Scalars("val/acc")
    assert len(val_acc) == 3
    # 96 samples in batches of 16 for 3 epochs = 18 steps; the config logs every 5th
    assert [event.step for event in events.Scalars("train/loss")] == [4, 9, 14]
    assert len(events.Scalars("train/acc")) == 3
    assert val_acc[-1].value == pytest.approx(cli.trainer.callback_metrics["val/acc"].item())


def test_test_and_predict_from_a_checkpoint(run_dir):
    fit("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", "null")
    best = str(run_dir / "lightning_logs" / "iris" / "version_0" / "checkpoints" / "best.ckpt")
    tested = main(["test", "--config", str(CONFIGS / "iris.yaml"), "--ckpt_path", best, *QUIET])
    inputs, targets = tested.datamodule.split("test")
    model = zoo.load_model(best).eval()
    with torch.no_grad():
        expected = (model(inputs).argmax(1) == targets).float().mean().item()
    assert tested.trainer.callback_metrics["test/acc"].item() == pytest.approx(expected)  # the best weights, tested
    predicted = main(["predict", "--config", str(CONFIGS / "iris.yaml"), "--ckpt_path", best, *QUIET])
    folder = Path(predicted.trainer.log_dir)
    assert folder.resolve() == run_dir / "lightning_logs" / "iris" / "version_0" / "predict" / "version_0"
    with open(folder / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    with torch.no_grad():
        probabilities = model(inputs).softmax(1)
    assert [int(row["target"]) for row in rows] == targets.tolist()
    assert [int(row["predicted"]) for row in rows] == probabilities.argmax(1).tolist()
    assert float(rows[0]["probability"]) == pytest.approx(probabilities[0].max().item(), abs=1e-5)
    assert torch.allclose(torch.load(folder / "predictions.pt")["outputs"], model(inputs).detach(), atol=1e-5)


def test_regression_checkpoints_on_validation_loss(run_dir):
    cli = fit("multimult.yaml", "--trainer.max_epochs", "1", "--data.num_samples", "600", "--trainer.callbacks", "null")
    checkpoint = cli.trainer.checkpoint_callback
    assert (checkpoint.monitor, checkpoint.mode) == ("val/loss", "min")
    assert {"val/mse", "val/r2"} <= set(cli.trainer.callback_metrics)


def test_model_by_name_without_a_config(run_dir):
    cli = main(
        [
            "fit",
            "--model",
            "FCNet",
            "--model.hidden",
            "[8]",
            "--data.dataset",
            "iris",
            "--data.batch_size",
            "8",
            "--trainer.fast_dev_run",
            "1",
            *QUIET,
        ]
    )
    assert type(cli.model).__name__ == "FCNet"
    assert cli.model.input_shape == (4,)


def test_checkpointing_can_be_turned_off(run_dir):
    cli = fit(
        "iris.yaml",
        "--trainer.max_epochs",
        "1",
        "--trainer.enable_checkpointing",
        "false",
        "--trainer.callbacks",
        "null",
    )
    assert cli.trainer.checkpoint_callback is None
    assert not list(run_dir.rglob("*.ckpt"))


def test_progress_bar_redraws_every_few_steps_unless_configured(run_dir):
    iris = [
        "fit",
        "--config",
        str(CONFIGS / "iris.yaml"),
        "--trainer.fast_dev_run",
        "1",
        "--trainer.enable_model_summary",
        "false",
    ]
    default = main(iris).trainer.progress_bar_callback
    assert isinstance(default, TQDMProgressBar) and default.refresh_rate == PROGRESS_BAR_REFRESH_STEPS
    own = main(
        [*iris, "--trainer.callbacks+=TQDMProgressBar", "--trainer.callbacks.refresh_rate", "3"]
    ).trainer.progress_bar_callback
    assert own.refresh_rate == 3  # the config's bar, and no second one (Lightning refuses two)
    assert main([*iris, "--trainer.enable_progress_bar", "false"]).trainer.progress_bar_callback is None


def test_configs_start_from_zoo_defaults(run_dir):
    """Logger, optimizer, schedule and analyses come from zoo/defaults.yaml; the schedule spans the run."""
    cli = main(
        ["fit", "--config", str(CONFIGS / "iris.yaml"), "--trainer.max_epochs", "4", "--trainer.fast_dev_run", "0"]
    )
    config = cli.config["fit"]
    assert config.trainer.logger.init_args.name == "iris"  # named after the config file
    assert config.lr_scheduler.init_args.T_max == 4  # follows --trainer.max_epochs
    scheduler = cli.trainer.lr_scheduler_configs[0].scheduler
    assert scheduler.T_max == 4 and scheduler.get_last_lr()[0] == pytest.approx(0.0, abs=1e-12)  # decayed to the end
    names = [type(callback).__name__ for callback in cli.trainer.callbacks]
    assert {"TaskSeparation", "ActivationAnalysis", "ModelCheckpoint"} <= set(names)
    unnamed = main(
        [
            "fit",
            "--model",
            "FCNet",
            "--data.dataset",
            "iris",
            "--data.batch_size",
            "16",
            "--trainer.max_epochs",
            "1",
            *QUIET,
        ]
    )
    assert (
        Path(unnamed.trainer.log_dir).resolve() == run_dir / "lightning_logs" / "fcnet" / "version_0"
    )  # no config: the model


def test_print_config(run_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(CONFIGS / "fc.yaml"), "--print_config"])
    assert exit_.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["hidden"] == [1024, 512]
    assert printed["optimizer"]["class_path"] == "torch.optim.Adam"


def test_same_seed_same_metrics_and_weights(run_dir, data_dir):
    quick = (
        "--trainer.callbacks",
        "null",
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "20",
        "--trainer.limit_val_batches",
        "2",
    )
    runs = [fit("fc.yaml", *quick) for _ in range(2)]
    first, second = (run.trainer.callback_metrics for run in runs)
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()):
        assert torch.equal(a, b)
    other_seed = fit("fc.yaml", "--seed_everything", "1", *quick)
    assert not torch.equal(other_seed.trainer.callback_metrics["train/acc"], first["train/acc"])


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--model.init_args.hidden", "[64, 0]"], "zoo: error: model.hidden must be positive integers, got [64, 0]"),
        (["--model.init_args.dropout", "1.5"], "zoo: error: dropout must lie in [0, 1), got 1.5"),
        (["--data.val_fraction", "0"], "zoo: error: data.val_fraction must lie strictly between 0 and 1, got 0"),
        (
            ["--data.batch_size", "500"],
            "zoo: error: data.batch_size 500 is larger than the training split (96 samples of iris)",
        ),
        (["--model.init_args.activation", "swish"], "model.activation (FCNet): 'swish' is not accepted; accepted:"),
        (["--data.dataset", "cifar10"], "data.dataset: 'cifar10' is not accepted; accepted: mnist, fashion_mnist,"),
        (["--trainer.max_epochs", "many"], "trainer.max_epochs: 'many' is not a whole number or null"),
    ],
)
def test_bad_values_exit_with_one_message(flags, message, run_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        fit("iris.yaml", *flags)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_wrong_key_in_a_subprocess_has_no_traceback(tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text((CONFIGS / "iris.yaml").read_text().replace("activation: relu", "activaton: relu"))
    result = zoo_subprocess("fit", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "FCNet has no option 'activaton' (did you mean 'activation'?)" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_in_a_subprocess_says_where_to_put_it(tmp_path):
    result = zoo_subprocess(
        "fit",
        "--config",
        str(CONFIGS / "fc.yaml"),
        "--data.download",
        "false",
        cwd=tmp_path,
        env={"ZOO_DATA_DIR": str(tmp_path / "empty")},
    )
    assert result.returncode == 2
    assert f"Put these files into {tmp_path / 'empty' / 'mnist'}" in result.stderr
    assert "train-images-idx3-ubyte.gz  (md5 f68b3c2dcbeaaa9fbdd348bbdeb94873)" in result.stderr
    assert "Traceback" not in result.stderr


def test_last_checkpoint_follows_every_epoch_even_without_a_new_best(run_dir):
    """Lightning 2.6 rewrites last.ckpt only with a new best; zoo's resume needs the last epoch itself."""
    cli = fit("iris.yaml", "--trainer.max_epochs", "3", "--trainer.callbacks", "null", "--optimizer.lr", "1e-9")
    folder = run_dir / "lightning_logs" / "iris" / "version_0" / "checkpoints"
    assert torch.load(folder / "best.ckpt", weights_only=True)["epoch"] == 0  # val/acc never improved
    last = torch.load(folder / "last.ckpt", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, cli.trainer.global_step)


def test_what_a_run_prints(run_dir, capsys):
    """Its layers first, one line per analysis, and where everything went at the end; no Lightning noise."""
    iris = ["--config", str(CONFIGS / "iris.yaml"), "--trainer.max_epochs", "2"]
    logged: list[str] = []  # Lightning's log handler holds the stderr of the session's start: listen to it directly
    listener = logging.Handler()
    listener.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("pytorch_lightning").addHandler(listener)
    try:
        main(["fit", *iris, "--trainer.enable_progress_bar", "false"])
    finally:
        logging.getLogger("pytorch_lightning").removeHandler(listener)
    captured = capsys.readouterr()
    out, err = captured.out, captured.err + "\n".join(logged)
    run = Path("lightning_logs") / "iris" / "version_0"
    assert "probes: fc1 (16), fc2 (16)" in err and "MetricCollection" not in err  # zoo's summary, not Lightning's
    assert "TaskSeparation before training on 96 train samples ..." in err
    assert (
        "ActivationAnalysis @ epoch 1 took" in err
        and f"wrote {run / 'analysis' / 'activations' / 'epoch_001.json'}" in err
    )
    assert "Done: 2 epochs in" in out and re.search(r"best val/acc  0\.\d{4} at epoch [01]", out)
    assert f"checkpoints     {run / 'checkpoints' / 'best.ckpt'}, {run / 'checkpoints' / 'last.ckpt'}" in out
    assert f"run folder      {run}" in out and f"watch it        tensorboard --logdir {run.parent}" in out
    assert f"analysis        {run / 'analysis' / 'task_separation'}  (2 results, last epoch_001.json)" in out
    recorded = load_hparams_from_yaml(str(run / "hparams.yaml"))  # Lightning's file: the model and data as built
    assert recorded["hidden"] == [16, 16] and tuple(recorded["input_shape"]) == (4,) and recorded["dataset"] == "iris"
    for noise in ("💡 Tip", "LeafSpec", "dirpath has changed", "configure_optimizers` will be overridden"):
        assert noise not in out + err, noise
    events = EventAccumulator(str(run_dir / run))
    events.Reload()
    layout = events.Tensors("custom_scalars__config__")  # TensorBoard's CUSTOM SCALARS: training first
    assert b"1 training" in layout[0].tensor_proto.string_val[0]


def test_closing_summary_of_a_population_works_when_pasted(run_dir, capsys):
    """A config name with a space and accents: the tensorboard line is one shell word per argument; a population's
    analysis folders and the metric that picked best.ckpt (the members' mean) are named."""
    import shlex

    config = run_dir / "ïrïs ü.yaml"
    config.write_text((CONFIGS / "multimult.yaml").read_text())
    small = ["--data.num_samples", "300", "--trainer.max_epochs", "2", "--population", "2"]
    cli = main(["fit", "--config", str(config), *QUIET, *small])
    out = capsys.readouterr().out
    run = Path("lightning_logs") / "ïrïs ü" / "version_0"
    watch = next(line for line in out.splitlines() if line.startswith("  watch it"))
    assert shlex.split(watch.split(maxsplit=2)[2]) == ["tensorboard", "--logdir", str(run.parent)]
    monitor = cli.trainer.checkpoint_callback.monitor
    mean = r"\(the mean of 2 members\)"  # what picks a population's best, said where it is reported
    assert re.search(rf"best {monitor}  \d\.\d{{4}} {mean} at epoch [01], which picked best\.ckpt", out), out
    for analysis, results in (("task_separation", "2 results"), ("activations", "1 result")):  # before and after
        folder = run / "analysis" / analysis
        line = f"analysis        {folder}  ({results} for each member, in member_000 … member_001)"
        assert line in out, out
        assert (folder / "member_001" / "epoch_001.json").is_file()


def test_help_says_what_zoo_is(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "train and compare small architectures" in out and "models:    ColumNet, FCNet, SparseNet" in out
    assert (
        "datasets:  mnist, fashion_mnist, iris, multimult" in out
        and "python -m zoo fit --config configs/fc.yaml" in out
    )
    assert "writes predictions.csv and .pt to its folder." in " ".join(out.split())  # whole sentences


def test_a_resumed_run_names_the_best_epoch_of_its_best_checkpoint(run_dir, capsys):
    """RunSummary's best travels in the checkpoint: after --ckpt_path last it still names best.ckpt's epoch."""
    fit("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", "null")
    checkpoints = run_dir / "lightning_logs" / "iris" / "version_0" / "checkpoints"
    last = torch.load(checkpoints / "last.ckpt", weights_only=True)
    best_epoch = torch.load(checkpoints / "best.ckpt", weights_only=True)["epoch"]
    assert last["callbacks"]["RunSummary"]["best"][1] == best_epoch
    for group in last["optimizer_states"][0]["param_groups"]:  # frozen weights: no later epoch can do better
        group["lr"] = 0.0
    torch.save(last, checkpoints / "last.ckpt")
    capsys.readouterr()
    resumed = fit("iris.yaml", "--trainer.max_epochs", "4", "--trainer.callbacks", "null", "--ckpt_path", "last")
    assert resumed.trainer.current_epoch == 4
    assert torch.load(checkpoints / "best.ckpt", weights_only=True)["epoch"] == best_epoch  # still the first run's
    summary = re.search(r"best val/acc\s+([\d.]+) at epoch (\d+)", capsys.readouterr().out)
    assert summary is not None and int(summary.group(2)) == best_epoch


def test_a_run_resumed_with_more_epochs_decays_its_rate_to_the_new_end(run_dir):
    """The cosine schedule spans trainer.max_epochs on resume too (the checkpoint's T_max had the extra epochs at 0)."""
    monitor = ["--trainer.callbacks", "[{class_path: LearningRateMonitor, init_args: {logging_interval: epoch}}]"]
    first = fit("iris.yaml", "--trainer.max_epochs", "1", *monitor)
    before = [parameter.detach().clone() for parameter in first.model.parameters()]
    resumed = fit("iris.yaml", "--trainer.max_epochs", "3", *monitor, "--ckpt_path", "last")
    events = EventAccumulator(resumed.trainer.log_dir)
    events.Reload()
    rates = [event.value for event in events.Scalars("lr-Adam")]  # at each epoch's start: 0 (first run), then 1, 2
    base = 0.01  # configs/iris.yaml
    assert rates == pytest.approx([base, base * 0.75, base * 0.25])  # (1 + cos(π e / 3)) / 2 at epochs 1 and 2
    assert resumed.trainer.lr_scheduler_configs[0].scheduler.T_max == 3
    assert not any(torch.equal(a, b) for a, b in zip(before, resumed.model.parameters()))  # it trained on


def test_a_validation_or_test_on_its_own_says_what_it_evaluated_and_where(run_dir, capsys):
    fit("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks", "null")
    checkpoint = run_dir / "lightning_logs" / "iris" / "version_0" / "checkpoints" / "best.ckpt"
    for subcommand, done in (("validate", "Validation done"), ("test", "Test done")):
        capsys.readouterr()
        main([subcommand, "--config", str(CONFIGS / "iris.yaml"), *QUIET, "--ckpt_path", str(checkpoint)])
        out = capsys.readouterr().out
        folder = checkpoint.parent.parent / subcommand / "version_0"  # beside the run it evaluates
        assert f"{done}, of {checkpoint}.\n  run folder      {folder}\n" in out, out
        assert out.index(done) > out.index("acc")  # after Lightning's table of metrics


def test_best_or_last_of_an_older_run_says_which_and_why(run_dir):
    """--ckpt_path best took the newest run *with* a best.ckpt, silently: a newer run that names its
    checkpoints otherwise (or stopped before its first) had a user test another run's model unawares."""
    fit("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks", "null")
    fit("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks", "null", "--checkpoint.filename", "e{epoch}")
    said = []
    listener = logging.Handler()
    listener.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("pytorch_lightning").addHandler(listener)
    try:
        tested = main(["test", "--config", str(CONFIGS / "iris.yaml"), *QUIET, "--ckpt_path", "best"])
    finally:
        logging.getLogger("pytorch_lightning").removeHandler(listener)
    said = " ".join(" ".join(said).split())
    runs = Path("lightning_logs") / "iris"
    assert tested.trainer.ckpt_path == str(runs / "version_0" / "checkpoints" / "best.ckpt")
    assert f"the newest run with a best.ckpt; the newer version_1 under {runs} hold(s) none" in said
    outside = str(Path(tested.trainer.ckpt_path).rename("outside.ckpt"))  # a checkpoint outside any run folder,
    main(["test", "--config", str(CONFIGS / "iris.yaml"), *QUIET, "--ckpt_path", outside])  # tested in version_2
    heard = []
    listener.emit = lambda record: heard.append(record.getMessage())
    logging.getLogger("pytorch_lightning").addHandler(listener)
    try:
        main(["test", "--config", str(CONFIGS / "iris.yaml"), *QUIET, "--ckpt_path", "last"])
    finally:
        logging.getLogger("pytorch_lightning").removeHandler(listener)
    assert f"version_2 (a test run) under {runs} hold(s) none" in " ".join(" ".join(heard).split())


def test_a_resumed_csv_logger_run_keeps_its_earlier_metrics(run_dir, recwarn):
    """Lightning's CSVLogger deletes the metrics.csv it finds: a resume lost every epoch before it."""
    csv_logger = ["--trainer.logger", "CSVLogger", "--trainer.callbacks", "null"]
    fit("iris.yaml", *csv_logger, "--trainer.max_epochs", "2")
    fit("iris.yaml", *csv_logger, "--trainer.max_epochs", "4", "--ckpt_path", "last")
    with open(run_dir / "lightning_logs" / "iris" / "version_0" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    assert sorted({int(row["epoch"]) for row in rows if row.get("val/acc")}) == [0, 1, 2, 3]
    assert not [warning for warning in recwarn if "Previous log files" in str(warning.message)]


def test_the_closing_summary_names_the_files_kept_and_the_logger_to_read(run_dir, capsys):
    """It printed the filename template's tail ("which picked acc:.2f}.ckpt"), left out top-k checkpoints,
    and pointed a CSVLogger run at TensorBoard."""
    kept = ["--checkpoint.save_top_k", "2", "--checkpoint.filename", "{epoch}-{val/acc:.2f}"]
    fit("iris.yaml", "--trainer.max_epochs", "3", "--trainer.callbacks", "null", "--trainer.logger", "CSVLogger", *kept)
    out = capsys.readouterr().out
    folder = Path("lightning_logs") / "iris" / "version_0"
    files = sorted(path for path in (folder / "checkpoints").rglob("*.ckpt") if path.name != "last.ckpt")
    best = re.search(r"which picked (\S+)\n", out)  # the metric's "/" makes folders: epoch=1-val/acc=0.92.ckpt
    assert len(files) == 2 and best is not None
    assert best.group(1) in {str(path.relative_to(folder / "checkpoints")) for path in files}
    assert all(str(path) in out for path in files)
    assert f"metrics         {folder / 'metrics.csv'}" in out and "tensorboard --logdir" not in out
    hparams = load_hparams_from_yaml(str(folder / "hparams.yaml"))  # every run's record, whatever its logger
    assert hparams["hidden"] == [16, 16] and hparams["dataset"] == "iris"


def test_default_root_dir_holds_the_run_as_in_lightning(run_dir):
    """zoo's logger kept lightning_logs/ wherever --trainer.default_root_dir pointed."""
    root = ["--trainer.default_root_dir", "elsewhere", "--trainer.callbacks", "null"]
    fitted = fit("iris.yaml", "--trainer.max_epochs", "1", *root)
    assert Path(fitted.trainer.log_dir) == Path("elsewhere") / "lightning_logs" / "iris" / "version_0"
    assert (Path(fitted.trainer.log_dir) / "checkpoints" / "best.ckpt").is_file()
    assert not Path("lightning_logs").exists()
    tested = main(["test", "--config", str(CONFIGS / "iris.yaml"), *QUIET, *root, "--ckpt_path", "best"])
    assert tested.trainer.ckpt_path == str(Path(fitted.trainer.log_dir) / "checkpoints" / "best.ckpt")


def test_a_fit_refused_while_its_loops_set_up_leaves_no_run_folder(run_dir):
    """The folder was kept, with config, hparams and events of a run that never began."""
    with pytest.raises(SystemExit) as exited:
        fit("iris.yaml", "--trainer.limit_val_batches", "0.5", "--trainer.callbacks", "null")
    assert exited.value.code == 2
    assert not (run_dir / "lightning_logs").exists()


def test_an_analysis_added_beside_the_default_one_is_refused_before_anything_is_written(run_dir, capsys):
    """--trainer.callbacks+=TaskSeparation ran it twice, the two writing the same files (the defaults have one)."""
    with pytest.raises(SystemExit) as exited:
        fit("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks+=TaskSeparation")
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert "runs the task_separation analysis 2 times" in said and "give trainer.callbacks whole" in said
    assert not (run_dir / "lightning_logs").exists()


def test_a_checkpoint_that_does_not_fit_names_the_settings_it_was_built_with(run_dir, capsys):
    """--ckpt_path best took the newest run, a single-output one: the tensor shapes alone named no setting to change."""
    one = ["--data.outputs", "[1]", "--data.num_samples", "300", "--trainer.callbacks", "null"]
    fit("multimult.yaml", "--trainer.max_epochs", "1", *one)
    with pytest.raises(SystemExit) as exited:
        main(["test", "--config", str(CONFIGS / "multimult.yaml"), *QUIET, "--ckpt_path", "best"])
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert "head.bias is (1,) in the checkpoint and (2,) in the model built by this configuration" in said
    assert "(built with other settings: num_outputs 1 there, 2 here; num_outputs comes from the data" in said


def test_a_resume_with_no_epoch_left_is_refused_and_writes_nothing(run_dir, capsys):
    fit("iris.yaml", "--trainer.max_epochs", "2", "--trainer.callbacks", "null")
    folder = run_dir / "lightning_logs" / "iris" / "version_0"
    before = sorted(path.relative_to(folder) for path in folder.rglob("*"))
    for epochs in ("2", "1"):
        with pytest.raises(SystemExit) as exited:
            fit("iris.yaml", "--trainer.max_epochs", epochs, "--trainer.callbacks", "null", "--ckpt_path", "last")
        assert exited.value.code == 2
        said = capsys.readouterr().err
        assert f"has trained 2 epochs, and --trainer.max_epochs {epochs} leaves none to train" in said
    assert sorted(path.relative_to(folder) for path in folder.rglob("*")) == before  # no resume record


def test_a_resume_in_its_own_folder_does_not_warn_of_its_own_checkpoints(run_dir):
    """Lightning's 'Checkpoint directory ... exists and is not empty' came with every documented resume."""
    import warnings

    fit("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks", "null")
    (run_dir / "kept").mkdir()
    (run_dir / "kept" / "old.ckpt").write_bytes(b"")

    def warned(*extra: str) -> bool:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit("iris.yaml", "--trainer.callbacks", "null", *extra)
        return any("exists and is not empty" in str(warning.message) for warning in caught)

    assert not warned("--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert warned("--trainer.max_epochs", "1", "--checkpoint.dirpath", "kept")  # another folder is worth a word


def test_a_second_logger_writes_into_the_runs_folder(run_dir):
    """--trainer.logger+=CSVLogger dropped zoo's naming: the run in lightning_logs/version_0, its CSV elsewhere."""
    both = ["--trainer.logger+=CSVLogger", "--trainer.logger.save_dir", "lightning_logs", "--trainer.callbacks", "null"]
    fit("iris.yaml", "--trainer.max_epochs", "2", *both)
    folder = run_dir / "lightning_logs" / "iris" / "version_0"
    assert (folder / "metrics.csv").is_file() and list(folder.glob("events.out.tfevents.*"))
    assert (folder / "checkpoints" / "last.ckpt").is_file()
    assert sorted(path.name for path in (run_dir / "lightning_logs").iterdir()) == ["iris"]
    resumed = fit("iris.yaml", "--trainer.max_epochs", "3", *both, "--ckpt_path", "last")
    assert Path(resumed.trainer.log_dir).resolve() == folder.resolve()
    with open(folder / "metrics.csv") as file:
        assert sorted({int(row["epoch"]) for row in csv.DictReader(file) if row.get("val/acc")}) == [0, 1, 2]


def test_a_resume_with_other_optimizer_settings_is_refused(run_dir, capsys):
    """torch restores the saved optimizer: the new rate had no effect, yet the resume's config recorded it."""
    sgd = ["--optimizer", "SGD", "--trainer.callbacks", "null"]
    fit("iris.yaml", *sgd, "--optimizer.lr", "0.1", "--trainer.max_epochs", "1")
    with pytest.raises(SystemExit) as exited:
        fit("iris.yaml", *sgd, "--optimizer.lr", "0.5", "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert exited.value.code == 2
    said = capsys.readouterr().err
    assert "its optimizer was built with lr 0.1 (asked: 0.5), and a resume restores the optimizer as saved" in said
    resumed = fit("iris.yaml", *sgd, "--optimizer.lr", "0.1", "--trainer.max_epochs", "2", "--ckpt_path", "last")
    assert resumed.trainer.current_epoch == 2  # the same settings resume, the cosine schedule's rate aside
    plateau = ["--lr_scheduler", "ReduceLROnPlateau", "--lr_scheduler.monitor", "val/loss"]
    plateau += ["--lr_scheduler.mode", "max", "--lr_scheduler.patience", "0", "--trainer.callbacks", "null"]
    plateau += ["--trainer.logger.init_args.name", "plateau"]
    fit("iris.yaml", *plateau, "--trainer.max_epochs", "3")  # val/loss falls: "no improvement", the rate halves
    resumed = fit("iris.yaml", *plateau, "--trainer.max_epochs", "4", "--ckpt_path", "last")  # its own lower rate
    assert resumed.trainer.optimizers[0].param_groups[0]["lr"] < 0.01 and resumed.trainer.current_epoch == 4


def test_a_small_regression_loss_reads_as_itself_in_the_summary():
    from zoo.console import metric_text

    assert [metric_text(value) for value in (0.91666, 0.0012, 2.5e-05, 0.0)] == [
        "0.9167",
        "0.0012",
        "2.500e-05",
        "0.0000",
    ]


def test_without_a_logger_a_run_never_writes_over_an_earlier_ones_files(run_dir, capsys):
    """Off, the logger gave no run folder: the next run overwrote config.yaml and checkpoints in the same place."""
    off = ["--trainer.logger", "false", "--trainer.callbacks", "null", "--trainer.max_epochs", "1"]
    fit("iris.yaml", *off)
    first = {path: path.read_bytes() for path in [run_dir / "config.yaml", *(run_dir / "checkpoints").iterdir()]}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        fit("iris.yaml", *off, "--seed_everything", "1")
    assert exited.value.code == 2
    assert "trainer.logger is off, so this run would write into . (trainer.default_root_dir)" in capsys.readouterr().err
    assert {path: path.read_bytes() for path in first} == first
    elsewhere = fit("iris.yaml", *off, "--trainer.default_root_dir", "second")  # as the message says
    assert (run_dir / "second" / "config.yaml").is_file() and elsewhere.trainer.current_epoch == 1


def test_a_checkpoints_model_settings_over_the_configurations_are_said(run_dir):
    """Lightning builds a --ckpt_path model as it was saved, whatever the flags say: a flag it overrides is named."""
    fit("iris.yaml", "--trainer.max_epochs", "1", "--trainer.callbacks", "null")
    heard = []
    listener = logging.Handler()
    listener.emit = lambda record: heard.append(record.getMessage())
    logging.getLogger("pytorch_lightning").addHandler(listener)
    try:
        for hidden in ("[8]", "[16, 16]"):
            tested = main(
                [
                    "test",
                    "--config",
                    str(CONFIGS / "iris.yaml"),
                    *QUIET,
                    "--ckpt_path",
                    "best",
                    "--model.hidden",
                    hidden,
                ]
            )
            assert tested.model.hparams["hidden"] == [16, 16]
    finally:
        logging.getLogger("pytorch_lightning").removeHandler(listener)
    said = [line for line in heard if "its model is built as it was saved" in line]
    assert len(said) == 1 and said[0].endswith("with hidden [16, 16] (this configuration: [8])"), heard
