from typing import get_args

import pytest
import torch

import zoo
from zoo.errors import ZooError
from zoo.models import FCNet, SparseLayer, ZooModule
from zoo.models.layers import ACTIVATIONS, ActivationName, make_activation


def test_registry():
    assert "FCNet" in zoo.list_models()
    model = zoo.create_model("FCNet", hidden=[16])
    assert isinstance(model, FCNet) and isinstance(model, ZooModule)
    with pytest.raises(ZooError, match="unknown model 'ResNet'; accepted: .*FCNet"):
        zoo.create_model("ResNet")
    population = zoo.create_model("Population", architecture="FCNet", size=2, member={"hidden": [4]})
    assert population.kind == "population" and population.architecture == "FCNet"
    assert "Population" not in zoo.list_models() and all(
        zoo.create_model(name).kind == "architecture" for name in zoo.list_models()
    )  # listed: the architectures; a population of one is registered (its checkpoints load), not listed


def test_forward_and_hidden_activations():
    model = FCNet(hidden=[32, 16], input_shape=(1, 28, 28), num_outputs=10)
    outputs, hidden = model.forward_with_hidden(torch.randn(5, 1, 28, 28))
    assert outputs.shape == (5, 10)
    assert list(hidden) == ["fc1", "fc2"]
    assert [tuple(a.shape) for a in hidden.values()] == [(5, 32), (5, 16)]
    assert torch.equal(model(torch.zeros(2, 1, 28, 28)), model.forward_with_hidden(torch.zeros(2, 1, 28, 28))[0])


def test_hidden_activations_are_in_the_graph_of_the_outputs():
    """The contract the analyses rely on: ∂output/∂activation exists and is the last layer's weight."""
    model = FCNet(hidden=[8], activation="tanh", input_shape=(4,), num_outputs=3)
    outputs, hidden = model.forward_with_hidden(torch.randn(6, 4))
    (grad,) = torch.autograd.grad(outputs[:, 2].sum(), hidden["fc1"])
    assert torch.allclose(grad, model.head.weight[2].expand(6, 8))


SMALL = {
    "FCNet": {"hidden": [8, 6]},
    "ColumNet": {"hidden": [8, 6], "activations": ["relu", "tanh"]},
    "SparseNet": {"hidden": [8, 6], "density": 0.5, "backend": "sparse"},
    "Population": {"architecture": "SparseNet", "size": 2, "member": {"hidden": [8, 6], "density": 0.5}},
}
MODELS = [*zoo.list_models(), "Population"]  # every architecture, and a population of one


@pytest.mark.parametrize("name", MODELS)
def test_every_model_keeps_the_hidden_activation_contract(name):
    """For every registered model: named (N, units) activations through which the outputs are computed.

    A model is checked through its members (a single model is its own); a population's one batched
    call gives every member's outputs and activations, in the batched outputs' graph.
    """
    model = zoo.create_model(name, input_shape=(5,), num_outputs=3, **SMALL[name])
    x = torch.randn(7, 5)
    outputs, hidden = model.forward_with_hidden(x)
    members = list(model.members())
    assert model.by_member(outputs).shape == (len(members), 7, 3) and hidden and model.training
    grads = torch.autograd.grad(outputs.sum(), list(hidden.values()))
    assert all(grad.abs().sum() > 0 for grad in grads)
    for index, member in enumerate(members):
        own_outputs, own_hidden = member.forward_with_hidden(x)
        assert torch.allclose(model.by_member(outputs)[index], own_outputs, atol=1e-6)
        assert list(own_hidden) == list(hidden) == list(member.probes)
        for layer, activations in own_hidden.items():
            assert activations.shape == (7, member.probes[layer].units), layer
            assert torch.allclose(model.by_member(hidden[layer])[index], activations, atol=1e-6), layer
        grads = torch.autograd.grad(own_outputs.sum(), list(own_hidden.values()))
        assert all(grad.abs().sum() > 0 for grad in grads)
        switchable = [module for module in member.modules() if isinstance(module, SparseLayer)]
        x.requires_grad_()
        with member.analysis_mode():  # eval mode, and ordinary ops that vmap can batch
            assert not member.training and all(module.dense_equivalent for module in switchable)
            analysed = member(x)
            (batched,) = torch.autograd.grad(
                analysed, [x], torch.eye(3)[:, None].expand(3, 7, 3), is_grads_batched=True
            )
        assert member.training and not any(module.dense_equivalent for module in switchable)  # restored
        assert batched.shape == (3, 7, 5)
        assert torch.allclose(analysed, member.eval()(x), atol=1e-6)  # the same function as the kernels compute
        x = x.detach()


@pytest.mark.parametrize("name", MODELS)
def test_every_model_lets_an_analysis_edit_a_layer(name):
    """The edited activations are the ones reported and the ones the rest of the network uses (every member's)."""
    model = zoo.create_model(name, input_shape=(5,), num_outputs=3, **SMALL[name]).eval()
    x = torch.randn(4, 5)
    hidden = model.hidden_activations(x)
    outputs, edited = model.forward_with_hidden(x, edit=lambda layer, a: torch.zeros_like(a))
    assert all((a == 0).all() for a in edited.values())
    for index, member in enumerate(model.members()):
        expected = member.head(torch.zeros(4, member.head.in_features))
        assert torch.allclose(model.by_member(outputs)[index], expected, atol=1e-6)
    seen = []
    first = next(iter(hidden))
    doubled, _ = model.forward_with_hidden(
        x, edit=lambda layer, a: seen.append(layer) or (2 * a if layer == first else a)
    )
    assert sorted(seen) == sorted(hidden)  # every layer offered once (in the order the forward reaches them)
    assert not torch.allclose(doubled, model(x))  # the edit of the first layer reached the outputs


def test_hyperparameters_are_saved_for_checkpoints():
    model = FCNet(hidden=[8, 4], activation="gelu", dropout=0.1, input_shape=(4,), num_outputs=3)
    assert model.hparams["hidden"] == [8, 4]
    assert model.hparams["activation"] == "gelu"
    assert model.hparams["input_shape"] == (4,)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_builds_and_runs(name):
    model = FCNet(hidden=[6], activation=name, input_shape=(4,), num_outputs=2)
    assert torch.isfinite(model(torch.randn(3, 4))).all()


def test_activation_names_are_one_list():
    assert tuple(ACTIVATIONS) == get_args(ActivationName)
    with pytest.raises(ZooError, match="unknown activation 'swish'; accepted: relu, relu6, sigmoid"):
        make_activation("swish")


def test_batch_norm_and_dropout_are_built():
    model = FCNet(hidden=[8], batch_norm=True, dropout=0.5, input_shape=(4,), num_outputs=2)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    model.train()
    a, b = model(torch.ones(4, 4)), model(torch.ones(4, 4))
    assert not torch.equal(a, b)  # dropout is active in training
    model.eval()
    assert torch.equal(model(torch.ones(4, 4)), model(torch.ones(4, 4)))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"hidden": [32, 0]}, r"model.hidden must be positive integers, got \[32, 0\]"),
        ({"hidden": [-4]}, r"model.hidden must be positive integers, got \[-4\]"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\), got 1.0"),
        ({"num_outputs": 0}, "model.num_outputs must be positive, got 0"),
        ({"task": "ranking"}, "model.task must be one of classification, regression; got 'ranking'"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ZooError, match=message):
        FCNet(**kwargs)


def test_regression_trains_on_mean_squared_error():
    model = FCNet(hidden=[8], input_shape=(4,), num_outputs=2, task="regression")
    x, y = torch.randn(10, 4), torch.randn(10, 2)
    assert torch.allclose(model.loss(model(x), y), ((model(x) - y) ** 2).mean())
    assert (model.monitor.of("val"), model.monitor.mode) == ("val/loss", "min")
    assert set(model.val_metrics.keys()) == {"val/mse", "val/r2"}


def test_classification_metrics():
    model = FCNet(hidden=[8], input_shape=(4,), num_outputs=3)
    assert (model.monitor.of("val"), model.monitor.mode) == ("val/acc", "max")
    assert set(model.test_metrics.keys()) == {"test/acc"}
