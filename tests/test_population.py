"""Populations: N seeds trained as one batched model, each member exactly its own single run."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import zoo
from zoo.analysis import activation_analysis, task_separation
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models import Population
from zoo.models.population import flat_metrics

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
MULTIMULT = [
    "--config", str(CONFIGS / "multimult.yaml"), "--trainer.callbacks", "null", *QUIET,
    "--data.num_samples", "600", "--trainer.max_epochs", "2", "--data.shuffle_seed", "0",
]  # fmt: skip
MEMBERS = {
    "FCNet": {"hidden": [8, 6], "activation": "tanh"},
    "ColumNet": {"hidden": [5], "activations": ["relu", "tanh"]},
    "SparseNet": {"hidden": [12], "density": 0.3, "backend": "sparse"},
}


def test_each_member_is_the_single_run_of_its_seed(run_dir):
    """Three members and three single runs, same seeds and batches: the same weights."""
    population = main(["fit", *MULTIMULT, "--population", "3", "--seed_everything", "5"])
    assert isinstance(population.model, Population) and population.model.seeds == [5, 6, 7]
    for index in range(3):
        single = main(["fit", *MULTIMULT, "--seed_everything", str(5 + index)])
        member = population.model.member(index).state_dict()
        for name, tensor in single.model.state_dict().items():
            assert torch.allclose(member[name], tensor, atol=1e-6), (index, name)
    checkpoint = Path(population.trainer.log_dir) / "checkpoints" / "last.ckpt"
    loaded = zoo.load_model(checkpoint, member=2)
    assert type(loaded).__name__ == "FCNet" and loaded.hparams["hidden"] == [32, 32]
    assert all(torch.equal(a, b) for a, b in zip(loaded.parameters(), population.model.member(2).parameters()))


def test_metrics_per_member_and_the_populations_spread(run_dir):
    cli = main(["fit", *MULTIMULT, "--population", "4"])
    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"val/r2", "val/r2_std", "val/r2_min", "val/r2_max", "val/mse", "train/mse"} <= scalars
    assert {f"members/val_r2/{index:03d}" for index in range(4)} <= scalars
    inputs, targets = cli.datamodule.split("val")
    with torch.no_grad():
        for index in range(4):  # member i's logged R² is that of member i, evaluated on its own
            outputs = cli.model.member(index).eval()(inputs)
            r2 = 1 - ((outputs - targets) ** 2).sum(0) / ((targets - targets.mean(0)) ** 2).sum(0)
            logged = events.Scalars(f"members/val_r2/{index:03d}")[-1].value
            assert logged == pytest.approx(r2.mean().item(), abs=1e-4), index
    assert events.Scalars("val/r2")[-1].value == pytest.approx(
        sum(events.Scalars(f"members/val_r2/{i:03d}")[-1].value for i in range(4)) / 4, abs=1e-5
    )
    values = torch.tensor([events.Scalars(f"members/val_r2/{i:03d}")[-1].value for i in range(4)], dtype=torch.float64)
    mean, std = values.mean().item(), values.std().item()  # n − 1
    expected = {"std": std, "min": values.min().item(), "max": values.max().item()}
    expected.update({"mean_minus_std": mean - std, "mean_plus_std": mean + std})
    for kind, value in expected.items():  # the spread, at the step Lightning logged the population's mean
        logged = events.Scalars(f"val/r2_{kind}")
        assert len(logged) == cli.trainer.max_epochs and logged[-1].value == pytest.approx(value, abs=1e-5), kind
        assert [event.step for event in logged] == [event.step for event in events.Scalars("val/r2")], kind
    for stage, metric in (("val", "r2"), ("train", "mse")):  # every member at the step of the population's mean
        steps = [event.step for event in events.Scalars(f"{stage}/{metric}")]
        assert [event.step for event in events.Scalars(f"members/{stage}_{metric}/003")] == steps, stage
    # callback_metrics holds a metric's members as one vector: checkpoint callbacks deep-copy it twice an epoch
    members = cli.trainer.callback_metrics["members/val_r2"]
    assert members.shape == (4,) and members.tolist() == pytest.approx(values.tolist(), abs=1e-6)
    assert not any(re.fullmatch(r"members/.+/\d+", key) for key in cli.trainer.callback_metrics)
    flat = flat_metrics(cli.trainer.callback_metrics)
    assert {key: flat[key] for key in (f"members/val_r2/{i:03d}" for i in range(4))} == pytest.approx(
        {f"members/val_r2/{i:03d}": events.Scalars(f"members/val_r2/{i:03d}")[-1].value for i in range(4)}, abs=1e-6
    )


def test_a_logger_other_than_tensorboard_gets_every_member_too(run_dir):
    """TensorBoard gets the members as one event; any other logger through its own log_metrics, as before."""
    cli = main(["fit", *MULTIMULT, "--population", "3", "--trainer.logger", "CSVLogger"])
    with open(Path(cli.trainer.log_dir) / "metrics.csv") as file:
        rows = [row for row in csv.DictReader(file) if row.get("members/val_r2/002")]
    assert len(rows) == cli.trainer.max_epochs
    last = [float(rows[-1][f"members/val_r2/{index:03d}"]) for index in range(3)]
    assert last == pytest.approx(cli.trainer.callback_metrics["members/val_r2"].tolist(), abs=1e-6)
    spread = torch.tensor(last, dtype=torch.float64).std().item()
    assert float(rows[-1]["val/r2_std"]) == pytest.approx(spread, abs=1e-5)


def test_a_tensorboard_prefix_reaches_every_member(run_dir):
    """Members go to TensorBoard as one event, past the logger's log_metrics: its prefix must still reach them."""
    cli = main(["fit", *MULTIMULT, "--population", "2", "--trainer.logger.init_args.prefix", "pre"])
    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"pre-val/r2", "pre-members/val_r2/000", "pre-members/val_r2/001"} <= scalars
    assert not any(tag.startswith("members/") for tag in scalars)


@pytest.mark.parametrize("architecture", sorted(MEMBERS))
def test_every_architecture_in_a_population(architecture):
    population = Population(architecture, size=3, member=MEMBERS[architecture], input_shape=(5,), num_outputs=3)
    x = torch.randn(7, 5)
    outputs = population(x)
    assert outputs.shape == (3, 7, 3)
    for index in range(3):
        assert torch.allclose(outputs[index], population.member(index)(x), atol=1e-5), index
    assert not torch.allclose(outputs[0], outputs[1])  # different seeds, different members
    counts = population.member(0).parameter_counts()
    assert population.parameter_counts() == {kind: 3 * count for kind, count in counts.items()}


def test_the_member_that_diverged_is_named(run_dir, capsys):
    corrupt = "[{class_path: helpers.CorruptMember, init_args: {member: 1}}]"
    args = [arg if arg != "null" else corrupt for arg in MULTIMULT]
    with pytest.raises(SystemExit) as exit_:
        main(["fit", *args, "--population", "3", "--seed_everything", "4"])
    assert exit_.value.code == 3
    assert "zoo: error: the training loss of member(s) [1] (seeds [5]) stopped being finite" in capsys.readouterr().err


def test_gradient_clipping_by_norm_is_per_member():
    population = Population("FCNet", size=2, member={"hidden": [3]}, input_shape=(2,), num_outputs=2)
    for index, parameter in enumerate(population.stacked_parameters.values()):
        parameter.grad = torch.zeros_like(parameter)
        if index == 0:  # member 0's gradient has norm 10, member 1's norm 0.5
            parameter.grad[0].view(-1)[0] = 10.0
            parameter.grad[1].view(-1)[0] = 0.5
    population.configure_gradient_clipping(None, gradient_clip_val=1.0, gradient_clip_algorithm="norm")
    first = next(iter(population.stacked_parameters.values())).grad
    assert first[0].view(-1)[0].item() == pytest.approx(1.0, rel=1e-5)  # clipped to the bound
    assert first[1].view(-1)[0].item() == pytest.approx(0.5)  # left alone: its own norm is under the bound


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "model.size (the population's) must be at least 1, got 0"),
        ({"member": {"hiden": [4]}}, "model.member has an argument FCNet does not take"),
        ({"member": {"batch_norm": True}}, "a Population cannot hold batch-norm members yet"),
        ({"architecture": "ResNet"}, "unknown model 'ResNet'"),
    ],
)
def test_bad_populations(kwargs, message):
    with pytest.raises(ZooError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Population(**{"architecture": "FCNet", "size": 2, "input_shape": (3,), "num_outputs": 2, **kwargs})


def test_a_single_model_is_its_own_only_member(run_dir):
    main(["fit", *MULTIMULT, "--trainer.max_epochs", "1"])
    checkpoint = next(run_dir.rglob("last.ckpt"))
    model = zoo.load_model(checkpoint, member=0)
    assert list(model.members()) == [model] and model.architecture == "FCNet"
    with pytest.raises(ZooError, match="this FCNet is one model, not a population: it has member 0 only, not 1"):
        zoo.load_model(checkpoint, member=1)


def test_analyses_run_on_every_member(run_dir):
    """Each member's JSON; the population's mean and spread as scalars; figures of member 0 only."""
    callbacks = "[{class_path: zoo.callbacks.TaskSeparation, init_args: {every_n_epochs: null}}]"
    args = [arg if arg != "null" else callbacks for arg in MULTIMULT]
    cli = main(["fit", *args, "--population", "3", "--trainer.max_epochs", "1"])
    folder = run_dir / "lightning_logs" / "multimult" / "version_0" / "analysis" / "task_separation"
    results = [json.loads((folder / f"member_{i:03d}" / "epoch_000.json").read_text()) for i in range(3)]
    expected = task_separation(cli.model.member(1), *cli.datamodule.split("train"), data="train")
    assert results[1]["pairs"][0]["signed_orthogonality"] == pytest.approx(expected.pairs[0]["signed_orthogonality"])
    assert list((folder / "member_000").glob("*.png")) and not list((folder / "member_001").glob("*.png"))
    events = EventAccumulator(cli.trainer.log_dir)
    events.Reload()
    mean = events.Scalars("task_separation/mean_interference")[-1].value
    assert mean == pytest.approx(sum(result["mean_interference"] for result in results) / 3, abs=1e-5)
    assert "task_separation/mean_interference/std" in events.Tags()["scalars"]


def test_a_populations_predictions_have_a_row_per_sample_and_member(run_dir):
    args = [*MULTIMULT, "--population", "2", "--trainer.max_epochs", "1"]
    fitted = main(["fit", *args])
    best = str(Path(fitted.trainer.log_dir) / "checkpoints" / "best.ckpt")
    predicted = main(["predict", *args, "--ckpt_path", best])
    with open(Path(predicted.trainer.log_dir) / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    inputs = predicted.datamodule.split("test")[0]
    assert [row["member"] for row in rows] == ["0"] * len(inputs) + ["1"] * len(inputs)
    with torch.no_grad():
        member = zoo.load_model(best, member=1).eval()(inputs)
    second = [float(row["output_0"]) for row in rows[len(inputs) :]]
    assert second == pytest.approx(member[:, 0].tolist(), abs=1e-5)


def test_a_population_runs_again_from_its_own_config(run_dir, capsys):
    first = main(["fit", *MULTIMULT, "--population", "2", "--trainer.max_epochs", "1"])
    saved = Path(first.trainer.log_dir) / "config.yaml"
    again = main(["fit", "--config", str(saved), "--trainer.logger.init_args.version", "null"])
    assert isinstance(again.model, Population) and again.model.size == 2 and again.model.input_shape == (4,)
    assert all(torch.equal(a, b) for a, b in zip(again.model.parameters(), first.model.parameters()))
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(saved), "--population", "3"])
    assert "--population 3 wraps one architecture, and this configuration's model is a Population of 2" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("analysis", [task_separation, activation_analysis])
def test_an_analysis_of_a_population_is_one_per_member(analysis):
    """The analyses take one model: a population's members are analysed one by one (the callbacks do so), and a
    population given whole is refused with one message."""
    population = Population("FCNet", size=2, member={"hidden": [4]}, input_shape=(3,), num_outputs=2)
    x, y = torch.rand(30, 3), torch.randint(0, 2, (30,))
    with pytest.raises(ZooError, match=r"analyses one model, and this Population holds several; analyse each"):
        analysis(population, x, y)
    results = [analysis(member, x, y) for member in population.members()]
    assert len(results) == 2 and all(result.summary() for result in results)


def test_a_population_checkpoint_under_a_single_models_config_says_how_to_load_it(run_dir, capsys):
    cli = main(["fit", *MULTIMULT, "--population", "3"])
    checkpoint = Path(cli.trainer.log_dir) / "checkpoints" / "best.ckpt"
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["test", *MULTIMULT, "--ckpt_path", str(checkpoint)])
    error = capsys.readouterr().err
    assert exited.value.code == 2
    assert f"{checkpoint}: holds a Population, but this configuration builds a FCNet; add --population 3" in error
    tested = main(["test", *MULTIMULT, "--ckpt_path", str(checkpoint), "--population", "3"])  # as the hint says
    assert torch.isfinite(tested.trainer.callback_metrics["test/loss"])
    for command in ("test", "fit"):  # another size was read as the checkpoint's, and recorded as asked
        with pytest.raises(SystemExit) as exited:
            main([command, *MULTIMULT, "--ckpt_path", str(checkpoint), "--population", "2"])
        assert exited.value.code == 2
        assert f"{checkpoint}: holds a Population of 3 members, not 2; give --population 3" in capsys.readouterr().err
