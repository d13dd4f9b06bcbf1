"""Bad input through the real entry point: one message, a non-zero exit code, no traceback.

Every case runs ``zoo.cli.main`` in-process. The same list renders the table in
docs/errors.md, and a test fails when that file is stale; regenerate it with

    python tests/test_errors.py
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
DOC = ROOT / "docs" / "errors.md"
QUIET = ("--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false")
NO_CALLBACKS = ("--trainer.callbacks", "null")  # right after the config, so a case can still set its own


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
    Case("config", "unknown key in a YAML file", ("--config", "{typo_yaml}"), "Option 'activaton' is not accepted"),
    Case(
        "config", "unknown flag", (*IRIS, "--trainer.max_epochz", "3"), "unrecognized arguments: --trainer.max_epochz 3"
    ),
    Case("config", "wrong type", (*IRIS, "--trainer.max_epochs", "many"), 'Parser key "trainer.max_epochs"'),
    Case("config", "unknown model", (*IRIS, "--model", "ResNet"), "Accepted models: ColumNet, FCNet, SparseNet"),
    Case(
        "config",
        "unknown dataset",
        (*IRIS, "--data.dataset", "cifar10"),
        "Expected a typing.Literal['mnist', 'fashion_mnist', 'iris', 'multimult']",
    ),
    Case(
        "config",
        "unknown activation",
        (*IRIS, "--model.init_args.activation", "swish"),
        "Expected a typing.Literal['relu', 'relu6', 'sigmoid', 'tanh'",
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
        "Expected a typing.Literal['masked', 'sparse', 'torch_sparse']",
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


def test_at_least_25_cases():
    assert len(CASES) >= 25


def render() -> str:
    lines = [
        "# Errors: what zoo says to a mistake",
        "",
        "Every row is a test (`tests/test_errors.py`) that runs the real entry point with that",
        "mistake and checks the exit code and that the message contains the text shown. Exit",
        "code 2 is a mistake in the input; 3 is a training run that diverged. Messages from",
        "jsonargparse (config keys, types, choices) come with its usage text; zoo's own start",
        "with `zoo: error:`. No case prints a Python traceback. This file is generated from",
        "the test's list: `python tests/test_errors.py`.",
        "",
        "Corrupt IDX content that still has the official MD5 cannot happen with the official",
        "files, so the IDX reader's own checks (wrong magic number, image and label counts that",
        "differ, labels out of range, a truncated gzip stream) are tested on files the tests",
        "write, in `tests/test_idx.py`.",
        "",
        "| # | kind | mistake | command | exit | message contains |",
        "| ---: | --- | --- | --- | ---: | --- |",
    ]
    for number, case in enumerate(CASES, start=1):
        command = " ".join(["zoo", case.subcommand, *case.args]).replace("{configs}/", "configs/").replace("|", "\\|")
        message = case.message.replace("|", "\\|")
        lines.append(f"| {number} | {case.category} | {case.what} | `{command}` | {case.exit_code} | `{message}` |")
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    assert DOC.read_text() == render(), "docs/errors.md is stale: run python tests/test_errors.py"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}", file=sys.stderr)
