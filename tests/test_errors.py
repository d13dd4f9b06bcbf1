"""Bad input and faults through the real entry point: one message, a non-zero exit code, no traceback.

Every mistake runs ``zoo.cli.main`` in-process. Environment faults (a read-only or a
full file system) run it in a private mount namespace where the test mounts them; a
missing device and an unreadable file are injected in-process. The lists render the
table in docs/errors.md, and a test fails when that file is stale; regenerate it with

    python tests/test_errors.py
"""

from __future__ import annotations

import errno
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DATA_DIR

from zoo.errors import EXIT_CODES
from zoo.runs import lock_run_folder

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DOC = ROOT / "docs" / "errors.md"
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")
NO_CALLBACKS = ("--trainer.callbacks", "null")  # right after the config, so a case can still set its own
BUSY: list = []  # the lock the fixture holds on a run folder, for as long as the tests run


@dataclass(frozen=True)
class Case:
    category: str
    what: str  # the mistake, for the table
    args: tuple[str, ...]  # after the subcommand, starting with --config; {placeholders} name files the fixture makes
    message: str  # what stderr must contain
    exit_code: int = 2
    subcommand: str = "fit"


IRIS = ("--config", "{configs}/iris.yaml")
MNIST = ("--config", "{configs}/fc.yaml")
CASES = [
    Case(
        "config",
        "unknown key in a YAML file",
        ("--config", "{typo_yaml}"),
        "zoo: error: model: FCNet has no option 'activaton' (did you mean 'activation'?); accepted: hidden,",
    ),
    Case(
        "config",
        "unknown option of a class",
        (*IRIS, "--optimizer.lrr", "0.1"),
        "zoo: error: optimizer: Adam has no option 'lrr' (did you mean 'lr'?); accepted: lr, betas, eps,",
    ),
    Case(
        "config", "unknown flag", (*IRIS, "--trainer.max_epochz", "3"), "unrecognized arguments: --trainer.max_epochz 3"
    ),
    Case(
        "config",
        "wrong type",
        (*IRIS, "--trainer.max_epochs", "many"),
        "zoo: error: trainer.max_epochs: 'many' is not a whole number or null",
    ),
    Case(
        "config",
        "wrong type of a class's option",
        (*IRIS, "--optimizer.init_args.lr", "fast"),
        "zoo: error: optimizer.lr (Adam): 'fast' is not a number or a tensor",
    ),
    Case(
        "config",
        "unknown model",
        (*IRIS, "--model", "ResNet"),
        "zoo: error: model: no class 'ResNet'; accepted: ColumNet, FCNet, SparseNet, or a class's import path",
    ),
    Case(
        "config",
        "misspelt optimizer",
        (*IRIS, "--optimizer", "Adamm"),
        "zoo: error: optimizer: no class 'Adamm' (did you mean 'Adam'?); accepted: Adafactor, Adadelta, Adagrad, Adam,",
    ),
    Case(
        "config",
        "misspelt callback",
        (*IRIS, "--trainer.callbacks+=TaskSeperation"),
        "zoo: error: trainer.callbacks: no class 'TaskSeperation' (did you mean 'TaskSeparation'?); accepted: SET,",
    ),
    Case(
        "config",
        "unknown dataset",
        (*IRIS, "--data.dataset", "cifar10"),
        "zoo: error: data.dataset: 'cifar10' is not accepted; accepted: mnist, fashion_mnist, iris, multimult",
    ),
    Case(
        "config",
        "unknown activation",
        (*IRIS, "--model.init_args.activation", "swish"),
        "zoo: error: model.activation (FCNet): 'swish' is not accepted; accepted: relu, relu6, sigmoid, tanh,",
    ),
    Case(
        "config",
        "hidden width ≤ 0",
        (*IRIS, "--model.init_args.hidden", "[64, 0]"),
        "zoo: error: model.hidden must be positive integers, got [64, 0]",
    ),
    Case(
        "config",
        "empty ColumNet column list",
        ("--config", "{no_columns_yaml}"),
        "zoo: error: ColumNet needs at least one column; got an empty list",
    ),
    Case(
        "config",
        "ColumNet columns and shorthand together",
        ("--config", "{both_columns_yaml}"),
        "zoo: error: give either model.columns or the shorthand model.hidden + model.activations, not both",
    ),
    Case(
        "config",
        "density outside (0, 1]",
        (*IRIS, "--model", "SparseNet", "--model.density", "1.5"),
        "zoo: error: model.density of layer 1 (4→16) must lie in (0, 1]; it is 1.5",
    ),
    Case(
        "config",
        "density of 0",
        (*IRIS, "--model", "SparseNet", "--model.density", "0"),
        "zoo: error: model.density of layer 1 (4→16) must lie in (0, 1]; it is 0",
    ),
    Case(
        "config",
        "ε that gives a density > 1",
        (*IRIS, "--model", "SparseNet", "--model.epsilon", "5"),
        "zoo: error: model.density of layer 1 (4→16) must lie in (0, 1]; epsilon 5.0 gives 1.562",
    ),
    Case(
        "config",
        "unknown sparse backend",
        (*IRIS, "--model", "SparseNet", "--model.backend", "cusparse"),
        "zoo: error: model.backend (SparseNet): 'cusparse' is not accepted (did you mean 'sparse'?); accepted: masked,",
    ),
    Case(
        "config",
        "dropout outside [0, 1)",
        (*IRIS, "--model.init_args.dropout", "1.5"),
        "zoo: error: dropout must lie in [0, 1), got 1.5",
    ),
    Case(
        "config",
        "batch size ≤ 0",
        (*IRIS, "--data.batch_size", "0"),
        "zoo: error: data.batch_size must be a positive integer, got 0",
    ),
    Case(
        "config",
        "batch size larger than the dataset",
        (*IRIS, "--data.batch_size", "500"),
        "zoo: error: data.batch_size 500 is larger than the training split (96 samples of iris)",
    ),
    Case(
        "config",
        "validation fraction outside (0, 1)",
        (*IRIS, "--data.val_fraction", "1.2"),
        "zoo: error: data.val_fraction must lie strictly between 0 and 1, got 1.2",
    ),
    Case(
        "config",
        "sample count for a fixed-size dataset",
        (*IRIS, "--data.num_samples", "100"),
        "zoo: error: data.num_samples sets the size of synthetic datasets (multimult); 'iris' has a fixed size",
    ),
    Case(
        "config",
        "analysis of a layer that does not exist",
        (*IRIS, "--trainer.callbacks", "[{class_path: zoo.callbacks.TaskSeparation, init_args: {layers: [fc9]}}]"),
        "zoo: error: TaskSeparation: unknown layer 'fc9'; FCNet's hidden layers are: fc1, fc2",
    ),
    Case(
        "config",
        "analysis schedule < 1",
        (
            *IRIS,
            "--trainer.callbacks",
            "[{class_path: zoo.callbacks.ActivationAnalysis, init_args: {every_n_epochs: 0}}]",
        ),
        "zoo: error: ActivationAnalysis: every_n_epochs must be at least 1, got 0",
    ),
    Case(
        "config",
        "SET's ζ outside (0, 1)",
        (
            *IRIS,
            "--model",
            "SparseNet",
            "--trainer.callbacks",
            "[{class_path: zoo.callbacks.SET, init_args: {zeta: 1.5}}]",
        ),
        "zoo: error: SET: zeta must lie strictly between 0 and 1 (the fraction of weights rewired), got 1.5",
    ),
    Case(
        "config",
        "SET on a model without sparse layers",
        (*IRIS, "--trainer.callbacks", "[{class_path: zoo.callbacks.SET}]"),
        "zoo: error: SET: FCNet has no sparse layers to rewire; SET trains a SparseNet",
    ),
    Case(
        "config",
        "SET on a population",
        (
            *IRIS,
            "--model",
            "SparseNet",
            "--population",
            "2",
            "--trainer.callbacks",
            "[{class_path: zoo.callbacks.SET}]",
        ),
        "zoo: error: SET: SET rewires one model's sparse layers in place, and a Population keeps",
    ),
    Case(
        "data",
        "missing data folder (downloads off)",
        (*MNIST, "--data.data_dir", "{nowhere}", "--data.download", "false"),
        "dataset files are missing and could not be fetched: downloads are turned off",
    ),
    Case(
        "data",
        "one file missing (downloads off)",
        (*MNIST, "--data.data_dir", "{one_missing}", "--data.download", "false"),
        "Put these files into",
    ),
    Case(
        "data",
        "file with the wrong MD5",
        (*MNIST, "--data.data_dir", "{wrong_md5}"),
        "train-labels-idx1-ubyte.gz: MD5 is",
    ),
    Case("data", "truncated .gz", (*MNIST, "--data.data_dir", "{truncated}"), "train-images-idx3-ubyte.gz: MD5 is"),
    Case(
        "data",
        "data folder not writable for a download",
        (*MNIST, "--data.data_dir", "{not_a_folder}/data"),
        "cannot write into",
    ),
    Case(
        "checkpoint",
        "missing checkpoint path",
        (*IRIS, "--ckpt_path", "{nowhere}/model.ckpt"),
        "zoo: error: checkpoint not found:",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "a word --ckpt_path does not take",
        (*IRIS, "--ckpt_path", "newest"),
        "zoo: error: checkpoint not found: newest; --ckpt_path takes a checkpoint file's path, or best or last",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "truncated checkpoint",
        (*IRIS, "--ckpt_path", "{truncated_ckpt}"),
        "not a readable checkpoint; it is corrupt, truncated or another kind of file",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "a file that is no checkpoint",
        (*IRIS, "--ckpt_path", "{readme}"),
        "not a readable checkpoint; it is corrupt, truncated or another kind of file",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "checkpoint of another architecture",
        ("--config", "{configs}/columnet.yaml", "--ckpt_path", "{iris_ckpt}"),
        "holds a FCNet, but this configuration builds a ColumNet",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "checkpoint of another shape",
        (*MNIST, "--ckpt_path", "{iris_ckpt}"),
        "does not fit this FCNet: blocks.0.0.weight is (16, 4) in the checkpoint and (16, 784) in the model",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "--ckpt_path last with no run to resume",
        ("--config", "{configs}/multimult.yaml", "--ckpt_path", "last"),
        "zoo: error: --ckpt_path last: no run under lightning_logs/multimult has a checkpoints/last.ckpt yet",
    ),
    Case(
        "training",
        "loss becomes NaN",
        (*IRIS, "--optimizer.lr", "1e30"),
        "zoo: error: the training loss became nan at step 1 (epoch 0); training stopped and these weights were not "
        "saved",
        exit_code=3,
    ),
    Case(
        "training",
        "Adam in float16 (16-true): its eps rounds to 0",
        (*IRIS, "--trainer.precision", "16-true"),
        "In 16-true precision the optimizer's eps (1e-08) rounds to 0 in float16: set --optimizer.init_args.eps 1e-4, "
        "or train in --trainer.precision 16-mixed or bf16-mixed.",
        exit_code=3,
    ),
    Case(
        "hyper-parameter",
        "negative learning rate",
        (*IRIS, "--optimizer.lr", "-0.1"),
        "zoo: error: optimizer.init_args.lr must be a positive number, got -0.1",
    ),
    Case(
        "hyper-parameter",
        "NaN learning rate",
        (*IRIS, "--optimizer.lr", ".nan"),
        "zoo: error: optimizer.init_args.lr must be a positive number, got nan",
    ),
    Case(
        "hyper-parameter",
        "max_epochs below -1",
        (*IRIS, "--trainer.max_epochs", "-5"),
        "zoo: error: trainer.max_epochs must be -1 (no limit) or a number of epochs ≥ 0, got -5",
    ),
    Case(
        "hyper-parameter",
        "a value torch refuses (negative momentum)",
        (*IRIS, "--optimizer", "SGD", "--optimizer.lr", "0.1", "--optimizer.momentum", "-1"),
        "zoo: error: the optimizer SGD (lr=0.1, momentum=-1.0) refused its settings: ValueError: Invalid momentum "
        "value",
    ),
    Case(
        "hyper-parameter",
        "a model with no parameters",
        (*IRIS, "--model", "helpers.NoParameters"),
        "zoo: error: the optimizer Adam refused its settings: ValueError: optimizer got an empty parameter list",
    ),
    Case(
        "environment",
        "an accelerator this machine lacks",
        (*IRIS, "--trainer.accelerator", "mps"),
        "zoo: error: this machine lacks the device asked for: `MPSAccelerator` can not run on your system",
        exit_code=4,
    ),
    Case(
        "environment",
        "data folder that is a file",
        (*MNIST, "--data.data_dir", "{readme}"),
        "README.md is a file; point --data.data_dir (or ZOO_DATA_DIR) at a folder",
    ),
    Case(
        "config",
        "YAML syntax error",
        ("--config", "{broken_yaml}"),
        "broken_yaml.yaml, line 7, column 15: not valid YAML: expected ',' or ']'",
    ),
    Case("config", "empty config file", ("--config", "{empty_yaml}"), "empty_yaml.yaml is empty"),
    Case(
        "checkpoint",
        "test --ckpt_path best with no run to take it from",
        (*IRIS, "--ckpt_path", "best"),
        "zoo: error: --ckpt_path best: no run under lightning_logs/iris has a checkpoints/best.ckpt yet",
        subcommand="test",
    ),
    Case("checkpoint", "fit --ckpt_path best", (*IRIS, "--ckpt_path", "best"), "a fit resumes from last"),
    Case(
        "checkpoint",
        "--ckpt_path last without a logger",
        (*IRIS, "--trainer.logger", "false", "--ckpt_path", "last"),
        "--ckpt_path last means the newest run of the logger, and this configuration logs nowhere",
    ),
    Case(
        "checkpoint",
        "checkpoint trained on another dataset",
        (*MNIST, "--data.dataset", "fashion_mnist", "--ckpt_path", "{mnist_ckpt}"),
        "was trained on mnist, and this configuration's data is fashion_mnist; use --data.dataset mnist, "
        "or --allow_other_dataset true",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "checkpoint trained on the same dataset split otherwise",
        (*IRIS, "--data.seed", "3", "--data.val_fraction", "0.25", "--ckpt_path", "{iris_ckpt}"),
        "was trained on iris with data.seed 0 (this configuration: 3), data.val_fraction 0.2 (this configuration: "
        "0.25): other samples or scaling than this configuration's; use --data.seed 0 --data.val_fraction 0.2, "
        "or --allow_other_dataset true",
        subcommand="test",
    ),
    Case(
        "checkpoint",
        "resume with another optimizer",
        (*IRIS, "--ckpt_path", "{iris_ckpt}", "--optimizer", "SGD", "--optimizer.lr", "0.1"),
        "was trained with optimizer Adam, and this configuration builds SGD; resume with the same optimizer",
    ),
    Case(
        "run folder",
        "resume of a run another process is writing",
        (*IRIS, "--trainer.logger.init_args.save_dir", "{busy_logs}", "--ckpt_path", "last"),
        "iris/version_0 is being written by another zoo run (pid",
    ),
    Case(
        "hyper-parameter",
        "a value torch refuses (negative weight decay)",
        (*IRIS, "--optimizer.weight_decay", "-1"),
        "zoo: error: the optimizer Adam (lr=0.01, weight_decay=-1.0) refused its settings: ValueError: Invalid "
        "weight_decay value: -1.0",
    ),
    Case(
        "hyper-parameter",
        "a schedule that divides by its setting (StepLR step_size 0)",
        (*IRIS, "--lr_scheduler", "torch.optim.lr_scheduler.StepLR", "--lr_scheduler.step_size", "0"),
        "zoo: error: the lr_scheduler StepLR (step_size=0) refused its settings: ZeroDivisionError",
    ),
    Case(
        "trainer",
        "a value Lightning refuses (num_nodes 0)",
        (*IRIS, "--trainer.num_nodes", "0"),
        "zoo: error: the trainer refused its settings: ValueError: `num_nodes` must be a positive integer, but got 0",
    ),
    Case(
        "trainer",
        "a device count Lightning refuses (devices -2)",
        (*IRIS, "--trainer.devices", "-2"),
        "zoo: error: the trainer refused its settings: TypeError: `devices` selected with `CPUAccelerator` should "
        "be an int > 0",
    ),
    Case(
        "config",
        "a class option without a default left out (EarlyStopping's monitor)",
        (*IRIS, "--trainer.callbacks+=EarlyStopping"),
        "zoo: error: trainer.callbacks: EarlyStopping needs monitor, which has no default; give it after the class: "
        "--trainer.callbacks.monitor VALUE",
    ),
    Case(
        "config",
        "a schedule's required option left out (StepLR's step_size)",
        (*IRIS, "--lr_scheduler", "StepLR"),
        "zoo: error: lr_scheduler: StepLR needs step_size, which has no default; give it after the class: "
        "--lr_scheduler.step_size VALUE",
    ),
    Case(
        "config",
        "a class of the lightning package (zoo runs on pytorch_lightning)",
        (*IRIS, "--trainer.callbacks+=lightning.pytorch.callbacks.EarlyStopping"),
        "zoo: error: trainer.callbacks: class 'lightning.pytorch.callbacks.EarlyStopping': no module named "
        "'lightning' (zoo runs on the pytorch_lightning package: pytorch_lightning.callbacks.EarlyStopping)",
    ),
    Case(
        "checkpoint",
        "the checkpoint's metric, which the task sets (checkpoint.monitor)",
        (*IRIS, "--checkpoint.monitor", "val/loss"),
        "zoo: error: checkpoint.monitor and checkpoint.mode follow the task (val/acc, max for classification; "
        "val/loss, min for regression) and pick best.ckpt; to keep checkpoints by another metric, add one: "
        "--trainer.callbacks+=ModelCheckpoint --trainer.callbacks.monitor val/loss --trainer.callbacks.mode min",
    ),
    Case(
        "trainer",
        "a share of batches that leaves none (limit_val_batches 0.5 of iris's one)",
        (*IRIS, "--trainer.limit_val_batches", "0.5"),
        "zoo: error: Lightning refused the configuration: You requested to check 0.5 of the `val_dataloader` but "
        "0.5 * 1 < 1",
    ),
    Case(
        "trainer",
        "max_steps below -1",
        (*IRIS, "--trainer.max_steps", "-5"),
        "zoo: error: the trainer refused its settings: `max_steps` must be a non-negative integer or -1",
    ),
    Case(
        "trainer",
        "a count Lightning divides by (accumulate_grad_batches 0)",
        (*IRIS, "--trainer.accumulate_grad_batches", "0"),
        "zoo: error: trainer.accumulate_grad_batches must be positive, got 0",
    ),
    Case(
        "trainer",
        "a count Lightning divides by (check_val_every_n_epoch 0)",
        (*IRIS, "--trainer.check_val_every_n_epoch", "0"),
        "zoo: error: trainer.check_val_every_n_epoch must be positive, got 0",
    ),
    Case(
        "trainer",
        "a count Lightning divides by (val_check_interval 0)",
        (*IRIS, "--trainer.val_check_interval", "0"),
        "zoo: error: trainer.val_check_interval must be positive, got 0",
    ),
    Case(
        "trainer",
        "a duration Lightning refuses (max_time)",
        (*IRIS, "--trainer.max_time", "00:00:-1:00"),
        "zoo: error: the callback Timer refused its settings: `Timer(duration='00:00:-1:00')` is not a valid duration",
    ),
    Case(
        "trainer",
        "a checkpoint setting Lightning refuses (save_top_k -5)",
        (*IRIS, "--checkpoint.save_top_k", "-5"),
        "zoo: error: the callback ModelCheckpoint refused its settings: Invalid value for save_top_k=-5",
    ),
    Case(
        "environment",
        "a GPU on a machine without one",
        (*IRIS, "--trainer.accelerator", "gpu", "--trainer.devices", "[5]"),
        "zoo: error: this machine lacks the device asked for: ",  # no GPU backend, or no GPU 5
        exit_code=4,
    ),
    Case(
        "config",
        "a seed numpy cannot take",
        (*IRIS, "--seed_everything", "-5"),
        "zoo: error: seed_everything must lie in [0, 4294967295] (numpy's seeds) or be true (random), got -5",
    ),
    Case(
        "config",
        "a run name the file system refuses (300 characters)",
        (*IRIS, "--trainer.logger.init_args.name", "x" * 300),
        "xxx: a file or folder name this long is refused by the file system; choose a shorter name",
    ),
    Case(
        "environment",
        "a model larger than memory (4 TB of weights; the issue's [100000, 100000] asks 40 GB)",
        (*MNIST, "--model.hidden", "[100000, 10000000]"),
        "zoo: error: out of memory: the model FCNet (hidden=[100000, 10000000], dropout=0.2) asked for 4.0 TB at "
        "once, more than this machine could give; choose smaller sizes",
        exit_code=4,
    ),
    Case(
        "environment",
        "a synthetic dataset larger than memory",
        ("--config", "{configs}/multimult.yaml", "--data.num_samples", "100000000000"),
        "zoo: error: out of memory: the data ZooDataModule (dataset='multimult', batch_size=64, normalize='none', "
        "num_samples=100000000000) asked for 1.9 TB at once",
        exit_code=4,
    ),
]


def fill(arg: str, paths: dict[str, str]) -> str:
    """Put the fixture's paths into ``{name}`` placeholders (str.format would trip over YAML braces)."""
    for name, path in paths.items():
        arg = arg.replace("{" + name + "}", path)
    return arg


@pytest.fixture(scope="module")
def files(tmp_path_factory, data_dir) -> dict[str, str]:
    """Broken inputs of every kind, made once."""
    from zoo.cli import main

    root = tmp_path_factory.mktemp("bad")
    mnist = data_dir / "mnist"
    paths = {"configs": str(CONFIGS), "nowhere": str(root / "nowhere"), "readme": str(ROOT / "README.md")}

    def mnist_copy(name: str) -> Path:
        folder = root / name / "mnist"
        folder.mkdir(parents=True)
        for file in mnist.iterdir():
            (folder / file.name).symlink_to(file)
        paths[name] = str(folder.parent)
        return folder

    (mnist_copy("one_missing") / "t10k-labels-idx1-ubyte.gz").unlink()
    wrong = mnist_copy("wrong_md5") / "train-labels-idx1-ubyte.gz"
    wrong.unlink()
    wrong.write_bytes(b"\x1f\x8b not the labels")
    truncated = mnist_copy("truncated") / "train-images-idx3-ubyte.gz"
    truncated.unlink()
    truncated.write_bytes((mnist / truncated.name).read_bytes()[:100_000])
    (root / "not_a_folder").write_text("a file where a folder should be")
    paths["not_a_folder"] = str(root / "not_a_folder")

    iris = (CONFIGS / "iris.yaml").read_text()
    for name, text in {
        "typo_yaml": iris.replace("activation: relu", "activaton: relu"),
        "no_columns_yaml": iris.replace("class_path: zoo.models.FCNet", "class_path: zoo.models.ColumNet").replace(
            "hidden: [16, 16]\n    activation: relu", "columns: []"
        ),
        "both_columns_yaml": iris.replace("class_path: zoo.models.FCNet", "class_path: zoo.models.ColumNet").replace(
            "activation: relu", "columns: [{hidden: [4], activation: relu}]"
        ),
        "broken_yaml": iris.replace("hidden: [16, 16]", "hidden: [16, 16"),
        "empty_yaml": "",
    }.items():
        (root / f"{name}.yaml").write_text(text)
        paths[name] = str(root / f"{name}.yaml")

    run = root / "run"
    run.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(run)
        main(["fit", *[fill(arg, paths) for arg in IRIS], *NO_CALLBACKS, "--trainer.max_epochs", "1", *QUIET])
    checkpoint = run / "lightning_logs" / "iris" / "version_0" / "checkpoints" / "last.ckpt"
    paths["iris_ckpt"] = str(checkpoint)
    shutil.copy(checkpoint, root / "truncated.ckpt")
    with open(root / "truncated.ckpt", "r+b") as handle:
        handle.truncate(2000)
    paths["truncated_ckpt"] = str(root / "truncated.ckpt")
    with pytest.MonkeyPatch.context() as patch:  # a small MNIST model, for the test on Fashion-MNIST
        patch.chdir(run)
        tiny = ["--model.hidden", "[8]", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"]
        main(["fit", *[fill(arg, paths) for arg in MNIST], *NO_CALLBACKS, *tiny, "--trainer.max_epochs", "1", *QUIET])
    paths["mnist_ckpt"] = str(run / "lightning_logs" / "fc" / "version_0" / "checkpoints" / "last.ckpt")
    busy = root / "busy"  # a run another process writes into: this one holds its lock
    shutil.copytree(run / "lightning_logs" / "iris" / "version_0", busy / "iris" / "version_0")
    paths["busy_logs"] = str(busy)
    BUSY.append(lock_run_folder(busy / "iris" / "version_0"))
    return paths


@pytest.mark.parametrize("case", CASES, ids=[case.what for case in CASES])
def test_bad_input(case, files, run_dir, capsys):
    from zoo.cli import main

    args = [fill(arg, files) for arg in case.args]
    with pytest.raises(SystemExit) as exit_:
        main([case.subcommand, *args[:2], *NO_CALLBACKS, *args[2:], *QUIET])
    error = capsys.readouterr().err
    assert exit_.value.code == case.exit_code, error
    assert case.message in error
    assert "Traceback" not in error
    assert not list(run_dir.rglob("*.ckpt"))  # nothing half-done was saved
    # a run folder is kept only if something ran in it (the diverged run's curves)
    left = [folder for folder in run_dir.rglob("version_*") if not any(folder.glob("events.out.tfevents.*"))]
    assert not left, f"empty run folders left behind: {left}"
    logs = run_dir / "lightning_logs"  # nor the empty folders made to hold one (lightning_logs/iris)
    assert not logs.exists() or any(logs.rglob("events.out.tfevents.*")), list(logs.rglob("*"))


def test_at_least_25_cases():
    assert len(CASES) >= 25


@dataclass(frozen=True)
class Fault:
    what: str  # the fault, for the table
    subcommand: str
    where: str  # how the test injects it
    message: str  # what stderr's one error line must contain
    exit_code: int = 4


SUBCOMMANDS = ("fit", "validate", "test", "predict")
FAULT_KINDS = [  # (fault, how the test injects it, what the error line says)
    ("a read-only run folder", "read-only tmpfs mount", "the file system is read-only"),
    ("a full disk", "tmpfs filled to the last byte", "the disk is full"),
    ("a device this machine lacks", "--trainer.accelerator mps", "this machine lacks the device asked for"),
    ("a data file that cannot be read", "reading it raises EACCES", "permission denied"),
]
FAULTS = [Fault(what, command, where, message) for what, where, message in FAULT_KINDS for command in SUBCOMMANDS]


def fault_run(subcommand: str, files: dict[str, str], logs: str, checkpoint: bool = True) -> list[str]:
    """A quick iris command; validate/test/predict use the fixture's checkpoint, copied out of its run folder."""
    args = [subcommand, *[fill(arg, files) for arg in IRIS], *NO_CALLBACKS, *QUIET, "--trainer.max_epochs", "1"]
    if subcommand != "fit" and checkpoint:
        args += ["--ckpt_path", files["loose_ckpt"]]
    return [*args, "--trainer.logger.init_args.save_dir", logs]


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("zoo: error:")]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


def test_environment_faults_on_every_command(files, tmp_path, capsys, monkeypatch):
    """Read-only and full file systems (mounted in a private namespace), a missing device, an unreadable file."""
    from zoo.cli import main

    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("this OS does not let the test mount a read-only or a small file system (unshare --mount)")
    shutil.copy(files["iris_ckpt"], tmp_path / "loose.ckpt")  # outside a run folder: commands log under logs/
    files = {**files, "loose_ckpt": str(tmp_path / "loose.ckpt")}
    for folder in ("readonly", "full", "filling"):
        (tmp_path / folder).mkdir()
    runs = [{"argv": fault_run(command, files, str(tmp_path / "readonly"))} for command in SUBCOMMANDS]
    runs += [{"argv": fault_run(command, files, str(tmp_path / "full"))} for command in SUBCOMMANDS]
    # a disk with room for the first epoch's two checkpoints, and not for the next one's
    filling = str(tmp_path / "filling" / "checkpoints")
    grows = ["--model.hidden", "[64, 64]", "--trainer.max_epochs", "6", "--checkpoint.dirpath", filling]
    runs.append(
        {"argv": [*fault_run("fit", files, str(tmp_path / "logs")), *grows], "then_load": f"{filling}/best.ckpt"}
    )
    script = (
        f"mount -t tmpfs -o size=64k,ro tmpfs {tmp_path / 'readonly'} && "
        f"mount -t tmpfs -o size=64k tmpfs {tmp_path / 'full'} && "
        f"(dd if=/dev/zero of={tmp_path / 'full' / 'filler'} bs=4k 2>/dev/null; true) && "
        f"mount -t tmpfs -o size=150k tmpfs {tmp_path / 'filling'} && "
        f"{sys.executable} {ROOT / 'tests' / 'fault_driver.py'} '{json.dumps(runs)}'"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    done = subprocess.run(
        ["unshare", "--mount", "sh", "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.splitlines()[-1])
    expected = [fault for fault in FAULTS if fault.where in ("read-only tmpfs mount", "tmpfs filled to the last byte")]
    for fault, result in zip(expected, results):
        assert result["code"] == fault.exit_code, (fault, result["stderr"])
        assert fault.message in one_error_line(result["stderr"]), fault
    filled = results[-1]  # the disk filled while best.ckpt or last.ckpt was written: the best before survives, whole
    assert filled["code"] == 4
    assert re.search(r"/(best|last)\.ckpt: the disk is full", one_error_line(filled["stderr"])), filled["stderr"]
    assert filled["loaded_epoch"] >= 0

    monkeypatch.chdir(tmp_path)
    real_open = gzip.open

    def unreadable(path, *args, **kwargs):
        if "train-images" in str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    for fault in (fault for fault in FAULTS if fault.where.startswith(("--trainer", "reading"))):
        args = fault_run(fault.subcommand, files, str(tmp_path / "quick"), checkpoint=fault.where.startswith("--"))
        if fault.where.startswith("--trainer"):
            args += ["--trainer.accelerator", "mps"]
        else:
            args[3:3] = ["--model", "FCNet", "--model.hidden", "[8]", "--data.dataset", "mnist"]  # after --config
            args += ["--data.data_dir", str(DATA_DIR)]
            monkeypatch.setattr(gzip, "open", unreadable)
        with pytest.raises(SystemExit) as exit_:
            main(args)
        monkeypatch.setattr(gzip, "open", real_open)
        assert exit_.value.code == fault.exit_code, fault
        assert fault.message in one_error_line(capsys.readouterr().err), fault
    assert not list((tmp_path / "quick").rglob("version_*"))  # nothing ran: no run folder left behind


def test_failures_are_one_hierarchy_classified_by_type():
    """Each kind of failure is its own type under ZooFailure; library exceptions are mapped by their types."""
    import argparse

    import torch
    from lightning_fabric.utilities.exceptions import MisconfigurationException

    from zoo.errors import EnvironmentFault, Interrupted, TrainingDiverged, ZooError, ZooFailure, classify

    kinds = {ZooError: 2, TrainingDiverged: 3, EnvironmentFault: 4}
    for kind, code in kinds.items():
        assert issubclass(kind, ZooFailure) and kind.exit_code == code
        assert not any(issubclass(kind, other) for other in kinds if other is not kind)  # none is another's case
    assert issubclass(Interrupted, ZooFailure) and not issubclass(Interrupted, ZooError)

    def raised(error: BaseException, wrapped_in: type[BaseException] = ValueError) -> BaseException:
        try:
            try:
                raise error
            except BaseException as cause:
                raise wrapped_in("a library's wrapper") from cause
        except BaseException as outer:
            return outer

    cases = [  # (what a library raised, inside a wrapper, the kind, its exit code)
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), EnvironmentFault, 4),
        (MemoryError(), EnvironmentFault, 4),
        (OSError(errno.ENOSPC, "No space left on device", "/run/x.ckpt"), EnvironmentFault, 4),
        (OSError(errno.ENAMETOOLONG, "File name too long", "x" * 300), ZooError, 2),
        (MisconfigurationException("`max_steps` must be a non-negative integer"), ZooError, 2),
        (MisconfigurationException("`MPSAccelerator` can not run on your system"), EnvironmentFault, 4),
        (argparse.ArgumentError(None, "expected one argument"), ZooError, 2),
        (_yaml_error(), ZooError, 2),
        (TrainingDiverged("the loss became nan"), TrainingDiverged, 3),
        (KeyboardInterrupt(), Interrupted, 130),
    ]
    for error, kind, code in cases:
        failure = classify(raised(error))
        assert isinstance(failure, kind) and failure.exit_code == code, (error, failure)
    assert "2.00 GiB at once" in str(classify(raised(cases[0][0])))
    assert classify(raised(KeyError("a bug in zoo"))) is None  # a bug keeps its traceback
    assert classify(raised(ValueError("a ValueError outside any configured object"))) is None


def _yaml_error() -> Exception:
    import yaml

    try:
        yaml.safe_load("a: [1, 2")
    except yaml.YAMLError as error:
        return error
    raise AssertionError("this YAML parses")


def test_every_script_ends_through_the_classifier(files, run_dir, monkeypatch, capsys):
    """analyze.py's fault of the machine is exit 4 (it was 2, or a traceback for an OSError); sweep.py's mistake 2."""
    import runpy

    def script(name: str, *args: str) -> tuple[int, str]:
        monkeypatch.setattr(sys, "argv", [name, *args])
        with pytest.raises(SystemExit) as exit_:
            runpy.run_path(str(ROOT / "scripts" / name), run_name="__main__")
        return exit_.value.code, capsys.readouterr().err

    code, error = script("analyze.py", "activations", files["iris_ckpt"], "--json", f"{files['readme']}/out.json")
    assert code == 4 and "Traceback" not in error, error
    assert f"analyze: error: {files['readme']} is not a folder (a file or folder is in the way)" in error
    code, error = script("analyze.py", "activations", files["truncated_ckpt"])
    assert code == 2 and "analyze: error: " in error and "not a readable checkpoint" in error, error
    code, error = script("sweep.py", files["broken_yaml"])
    assert code == 2 and "sweep: error: " in error and "Traceback" not in error, error


@dataclass(frozen=True)
class ScriptCase:
    what: str  # the mistake, for the table
    args: tuple[str, ...]  # the script, then its arguments (run in an empty folder: missing.* are missing)
    message: str  # how stderr's last line starts


MISSING_SOURCES = ("--sources", "missing.ckpt", "other.ckpt", "--merged", "merged.ckpt", "--runs", "run")
SCRIPT_CASES = [  # one argument argparse refuses and one input the classifier refuses, per script
    ScriptCase(
        "an unknown --split",
        ("analyze.py", "activations", "missing.ckpt", "--split", "nope"),
        "analyze.py activations: error: argument --split: invalid choice: 'nope'",
    ),
    ScriptCase(
        "a missing checkpoint",
        ("analyze.py", "activations", "missing.ckpt"),
        "analyze: error: checkpoint not found: missing.ckpt",
    ),
    ScriptCase(
        "no --out",
        ("surgery.py", "prune", "missing.ckpt"),
        "surgery.py prune: error: the following arguments are required: --out",
    ),
    ScriptCase(
        "a missing checkpoint",
        ("surgery.py", "prune", "missing.ckpt", "--out", "pruned.ckpt"),
        "surgery: error: checkpoint not found: missing.ckpt",
    ),
    ScriptCase(
        "no study folder", ("how_small.py",), "how_small.py: error: the following arguments are required: study"
    ),
    ScriptCase(
        "a folder that does not exist", ("how_small.py", "missing"), "how_small: error: missing: no such folder"
    ),
    ScriptCase("a folder with no study", ("how_small.py", "."), "how_small: error: . holds no study.db"),
    ScriptCase(
        "a report of a folder that does not exist",
        ("sweep.py", "report", "missing"),
        "sweep: error: missing: no such folder; give a sweep's output folder",
    ),
    ScriptCase(
        "an unknown option",
        ("sweep.py", "report", "--bogus"),
        "sweep.py report: error: unrecognized arguments: --bogus",
    ),
    ScriptCase(
        "a missing sweep file", ("sweep.py", "missing.yaml"), "sweep: error: sweep file not found: missing.yaml"
    ),
    ScriptCase(
        "one of the two --sources",
        ("merge_study.py", "--sources", "missing.ckpt"),
        "merge_study.py: error: argument --sources: expected 2 arguments",
    ),
    ScriptCase(
        "a missing --sources checkpoint",
        ("merge_study.py", *MISSING_SOURCES),
        "merge_study: error: --sources: checkpoint not found: missing.ckpt",
    ),
    ScriptCase(
        "--top 0",
        ("population_units.py", "missing.ckpt", "--top", "0"),
        "population_units.py: error: argument --top: must be at least 1, got 0",
    ),
    ScriptCase(
        "a missing checkpoint",
        ("population_units.py", "missing.ckpt"),
        "population_units: error: checkpoint not found: missing.ckpt",
    ),
    ScriptCase(
        "--repeats 0", ("bench.py", "--repeats", "0"), "bench.py: error: argument --repeats: must be at least 1, got 0"
    ),
    ScriptCase(
        "--threads 0",
        ("sweep.py", "sweeps/architectures.yaml", "--threads", "0"),
        "sweep.py: error: argument --threads: must be at least 1, got 0",
    ),
]


@pytest.mark.parametrize("case", SCRIPT_CASES, ids=[" ".join(case.args) for case in SCRIPT_CASES])
def test_script_errors_are_as_documented(case, run_dir, monkeypatch, capsys):
    """What a script prints for a bad argument (argparse: usage, then ``<script>.py [subcommand]: error:``) and for
    a bad input (``<script>: error:``) is what docs/errors.md says (it claimed ``analyze: error:`` for both)."""
    import runpy

    monkeypatch.setattr(sys, "argv", list(case.args))
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "scripts" / case.args[0]), run_name="__main__")
    error = capsys.readouterr().err
    assert exit_.value.code == 2 and "Traceback" not in error, error
    assert error.splitlines()[-1].startswith(case.message), error
    if ".py" in case.message.split(":")[0]:  # argparse's: its usage comes first
        assert error.startswith(f"usage: {case.message.split(':')[0]} "), error
    else:
        assert len(error.splitlines()) == 1, error
    assert f"`{case.message}`" in DOC.read_text()


def render() -> str:
    codes = "\n".join(f"| {code} | {meaning} |" for code, meaning in EXIT_CODES.items())
    lines = [
        "# Errors: what zoo says to a mistake or a fault",
        "",
        "Every row is a test (`tests/test_errors.py`) that runs the real entry point with that",
        "mistake or fault and checks the exit code and that the one error line contains the text",
        "shown; no case prints a Python traceback (only a bug in zoo may). Failures are",
        "classified in one place, `zoo/errors.py`. Every message of `python -m zoo` starts with",
        "`zoo: error:`, the parser's too (jsonargparse's message comes first, then a pointer to `--help`",
        "instead of the usage text). The scripts in `scripts/` say two kinds of line (see [Scripts](#scripts)):",
        "an argument their parser refuses prints argparse's usage, then `<script>.py [subcommand]: error:`",
        "(`analyze.py activations: error: argument --split: ...`); a mistake found once they run (a missing",
        "checkpoint, a value the data does not have) prints one line `<script>: error:` (`analyze: error:`,",
        "`sweep: error:`), through the same classifier. Both exit with 2. This file is generated from the",
        "test's lists: `python tests/test_errors.py`.",
        "",
        "Each kind of failure is its own type under `zoo.errors.ZooFailure`: `ZooError` (a mistake in",
        "the input, exit 2), `TrainingDiverged` (3), `EnvironmentFault` (4), `Interrupted` (130, 143).",
        "What a library raises is classified by its type: an `OSError` by its errno (a full or read-only",
        "disk, permission: 4; a name the file system refuses: 2), memory (`MemoryError`, torch's",
        "`OutOfMemoryError`, and torch's CPU allocator's `RuntimeError`, which only its text tells",
        "apart) with the size asked for: 4, Lightning's `MisconfigurationException` (a device this",
        "machine lacks, which only its text tells apart: 4; a value: 2), argparse's and jsonargparse's",
        "`ArgumentError` and YAML's `YAMLError`: 2. A `ValueError`, `TypeError`, `OverflowError`,",
        "`ZeroDivisionError` or `RuntimeError` raised by a library while a configured object is built",
        "(the model, the data, a callback, the logger, the trainer), or by an optimizer or a schedule",
        "using its settings, is a mistake (2) that names that object and the settings it was given.",
        "A run folder has one writer: a second `fit --ckpt_path last` of a running run names the",
        "process that holds the folder (its lock dies with that process) and writes nothing.",
        "",
        "| exit code | meaning |",
        "| ---: | --- |",
        codes,
        "",
        "Corrupt IDX content that still has the official MD5 cannot happen with the official",
        "files, so the IDX reader's own checks (wrong magic number, image and label counts that",
        "differ, labels out of range, a truncated gzip stream) are tested on files the tests",
        "write, in `tests/test_idx.py`.",
        "",
        "## Mistakes",
        "",
        "| # | kind | mistake | command | exit | message contains |",
        "| ---: | --- | --- | --- | ---: | --- |",
    ]
    for number, case in enumerate(CASES, start=1):
        command = " ".join(["zoo", case.subcommand, *case.args]).replace("{configs}/", "configs/").replace("|", "\\|")
        message = case.message.replace("|", "\\|")
        lines.append(f"| {number} | {case.category} | {case.what} | `{command}` | {case.exit_code} | `{message}` |")
    lines += [
        "",
        "## Faults of the environment",
        "",
        "Each zoo command with each fault (iris, a checkpoint for validate, test and predict).",
        "A read-only and a full file system are real: the test mounts them (tmpfs) in a private",
        "mount namespace. `tests/test_faults.py` also fills a disk while a checkpoint is being",
        "written and checks that the previous checkpoint survives.",
        "",
        "| # | fault | command | injected as | exit | message contains |",
        "| ---: | --- | --- | --- | ---: | --- |",
    ]
    for number, fault in enumerate(FAULTS, start=1):
        row = f"| {number} | {fault.what} | `zoo {fault.subcommand}` | {fault.where} | {fault.exit_code}"
        lines.append(f"{row} | `{fault.message}` |")
    lines += [
        "",
        "## Scripts",
        "",
        "Each script with one argument its parser refuses (the line follows argparse's usage text, and",
        "names the script as `python scripts/<script>.py` calls it, with the subcommand) and one mistake",
        "found once it runs (one line, named without `.py`); run in an empty folder, where `missing.*`",
        "are missing. The line shown is where stderr's last line starts.",
        "",
        "| # | mistake | command | exit | error line |",
        "| ---: | --- | --- | ---: | --- |",
    ]
    for number, script in enumerate(SCRIPT_CASES, start=1):
        command = "python scripts/" + " ".join(script.args)
        lines.append(f"| {number} | {script.what} | `{command}` | 2 | `{script.message}` |")
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    assert DOC.read_text() == render(), "docs/errors.md is stale: run python tests/test_errors.py"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
