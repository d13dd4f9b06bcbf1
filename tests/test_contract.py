"""The model/analysis contract: a new architecture is one file, and everything works with it."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import CONFIGS

import zoo
from zoo.analysis import activation_analysis, task_separation
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models import Analysable, ZooModule
from zoo.models.registry import _MODELS, register_model


@pytest.fixture(scope="module")
def residual_mlp():
    """tests/residual_mlp.py's architecture, registered for this module only."""
    from residual_mlp import ResidualMLP

    yield ResidualMLP
    _MODELS.pop("ResidualMLP", None)


def test_a_fourth_architecture_keeps_the_contract(residual_mlp):
    model = zoo.create_model("ResidualMLP", width=8, input_shape=(4,), num_outputs=3)
    assert isinstance(model, Analysable) and list(model.probes) == ["fc1", "fc2"]
    x = torch.randn(5, 4)
    outputs, hidden = model.forward_with_hidden(x)
    # fc2 is what the head reads: the residual sum, in the outputs' graph
    assert torch.allclose(outputs, model.head(hidden["fc2"]))
    (grad,) = torch.autograd.grad(outputs[:, 1].sum(), hidden["fc2"])
    assert torch.allclose(grad, model.head.weight[1].expand(5, 8))
    edited, _ = model.forward_with_hidden(x, edit=lambda name, a: torch.zeros_like(a) if name == "fc1" else a)
    assert not torch.allclose(edited, outputs)  # an edit of fc1 reaches the outputs through both paths


def test_both_analyses_run_on_it(residual_mlp, mnist):
    model = zoo.create_model("ResidualMLP", width=16)
    inputs, targets = (t[:200] for t in mnist.split("val"))
    separation = task_separation(model, inputs, targets)
    assert set(separation.attribution) == {"fc1", "fc2"} and separation.attribution["fc2"].shape == (16, 10)
    activations = activation_analysis(model, inputs, targets, maximize=0)
    assert set(activations.layers) == {"fc1", "fc2"} and activations.layers["fc2"].compression.k[-1] == 16


def test_it_trains_from_the_cli_with_the_default_analyses(residual_mlp, run_dir):
    model = ["--model", "residual_mlp.ResidualMLP", "--model.width", "8"]
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cli = main(["fit", "--config", str(CONFIGS / "iris.yaml"), *model, "--trainer.max_epochs", "2", *quiet])
    assert type(cli.model).__name__ == "ResidualMLP"
    folder = run_dir / "lightning_logs" / "iris" / "version_0" / "analysis"
    separation = json.loads((folder / "task_separation" / "epoch_001.json").read_text())
    activations = json.loads((folder / "activations" / "epoch_001.json").read_text())
    assert set(separation["roles"]) == set(activations["layers"]) == {"fc1", "fc2"}


def test_the_base_is_no_network():
    with pytest.raises(ZooError, match="ZooModule is the base of zoo's architectures; choose one: ColumNet, FCNet"):
        ZooModule()


def test_a_model_name_is_registered_once():
    with pytest.raises(ValueError, match="a model named 'FCNet' is already registered"):
        register_model(type("FCNet", (ZooModule,), {}))
