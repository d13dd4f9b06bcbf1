"""The model/analysis contract: a new architecture is one file, and everything works with it."""

from __future__ import annotations

import json
import threading

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


@pytest.mark.parametrize("size", [None, 2], ids=["single", "population"])
def test_both_analyses_run_on_it(residual_mlp, mnist, size):
    """Analyses take one model; a population's are its members (as the analysis callbacks run them)."""
    single = {"architecture": "ResidualMLP", "member": {"width": 16}, "size": size}
    model = zoo.create_model("ResidualMLP", width=16) if size is None else zoo.create_model("Population", **single)
    inputs, targets = (t[:200] for t in mnist.split("val"))
    members = list(model.members())
    assert len(members) == (size or 1) and all(member.architecture == "ResidualMLP" for member in members)
    for member in members:
        separation = task_separation(member, inputs, targets)
        assert set(separation.attribution) == {"fc1", "fc2"} and separation.attribution["fc2"].shape == (16, 10)
        activations = activation_analysis(member, inputs, targets, maximize=0)
        assert set(activations.layers) == {"fc1", "fc2"} and activations.layers["fc2"].compression.k[-1] == 16


@pytest.mark.parametrize("population", [[], ["--population", "2"]], ids=["single", "population"])
def test_it_trains_from_the_cli_with_the_default_analyses(residual_mlp, run_dir, population):
    model = ["--model", "residual_mlp.ResidualMLP", "--model.width", "8", *population]
    quiet = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    cli = main(["fit", "--config", str(CONFIGS / "iris.yaml"), *model, "--trainer.max_epochs", "2", *quiet])
    assert cli.model.architecture == "ResidualMLP"
    folder = run_dir / "lightning_logs" / "iris" / "version_0" / "analysis"
    members = [""] if not population else ["member_000", "member_001"]  # every member analysed, on its own
    assert len(list(cli.model.members())) == len(members)
    for member in members:
        separation = json.loads((folder / "task_separation" / member / "epoch_001.json").read_text())
        activations = json.loads((folder / "activations" / member / "epoch_001.json").read_text())
        assert set(separation["roles"]) == set(activations["layers"]) == {"fc1", "fc2"}


SMALL = {
    "FCNet": {"hidden": [6, 4]},
    "ColumNet": {"hidden": [4, 3], "activations": ["relu", "tanh"]},
    "SparseNet": {"hidden": [6, 4], "density": 0.5, "backend": "sparse"},
    "ResidualMLP": {"width": 6},
    "Population": {"architecture": "ResidualMLP", "size": 3, "member": {"width": 6}},
}  # every architecture (the fourth too), and a population of the fourth


def small(name: str) -> ZooModule:
    return zoo.create_model(name, input_shape=(5,), num_outputs=3, **SMALL[name])


@pytest.mark.parametrize("name", [name for name in SMALL if name != "Population"])
def test_intermediates_are_returned_and_nothing_is_stored_on_a_module(residual_mlp, name):
    """The probed activations are what the probes' own forward gives (a forward hook sees the same), and no
    module holds anything after the call."""
    model, x, seen = small(name), torch.randn(4, 5), {}
    hooks = [
        probe.register_forward_hook(lambda probe, args, output: seen.__setitem__(probe.name, output))
        for probe in model.probes.values()
    ]
    before = {name: dict(vars(probe)) for name, probe in model.probes.items()}
    outputs, hidden = model.forward_with_hidden(x)
    for hook in hooks:
        hook.remove()
    assert torch.equal(outputs, model(x))
    assert list(hidden) == list(model.probes) and set(seen) == set(hidden)  # in the order the model declares
    assert all(torch.equal(hidden[name], seen[name]) for name in hidden)
    assert {name: dict(vars(probe)) for name, probe in model.probes.items()} == before


@pytest.mark.parametrize("name", SMALL)
def test_a_call_inside_another_calls_edit_is_its_own(residual_mlp, name):
    """Re-entrant: an edit that itself runs the model (with another edit) changes nothing of the outer call."""
    model, x, inner = small(name), torch.randn(4, 5), []
    plain_outputs, plain = model.forward_with_hidden(x)
    zeroed_outputs, _ = model.forward_with_hidden(x, edit=lambda layer, a: torch.zeros_like(a))

    def outer_edit(layer: str, activations: torch.Tensor) -> torch.Tensor:
        if not inner:
            inner.append(model.forward_with_hidden(x, edit=lambda layer, a: torch.zeros_like(a)))
        return activations

    outputs, hidden = model.forward_with_hidden(x, edit=outer_edit)
    assert torch.allclose(outputs, plain_outputs) and list(hidden) == list(plain)
    assert all(torch.allclose(hidden[layer], plain[layer]) for layer in plain)
    inner_outputs, inner_hidden = inner[0]
    assert torch.allclose(inner_outputs, zeroed_outputs) and all((a == 0).all() for a in inner_hidden.values())


def test_two_calls_at_once_in_two_threads_keep_their_own_edits(residual_mlp):
    """Interleaved: both calls are inside the forward (held at the first probe) before either goes on."""
    model, x = small("FCNet"), torch.randn(4, 5)
    meet = threading.Barrier(2, timeout=30)
    results = {}

    def run(scale: float) -> None:
        def edit(name: str, activations: torch.Tensor) -> torch.Tensor:
            if name == "fc1":
                meet.wait()
            return scale * activations

        results[scale] = model.forward_with_hidden(x, edit=edit)

    threads = [threading.Thread(target=run, args=(scale,)) for scale in (0.0, 2.0)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for scale in (0.0, 2.0):
        alone = model.forward_with_hidden(x, edit=lambda name, a, scale=scale: scale * a)
        assert torch.allclose(results[scale][0], alone[0]), scale
        assert all(torch.allclose(results[scale][1][name], alone[1][name]) for name in alone[1])


def test_a_population_computes_every_members_intermediates_in_one_vmapped_call(residual_mlp):
    population, x = small("Population"), torch.randn(4, 5)
    edit = lambda name, a: a.clamp(max=0.1) if name == "fc1" else a  # noqa: E731
    outputs, hidden = population.forward_with_hidden(x, edit=edit)
    assert outputs.shape == (3, 4, 3) and {name: a.shape for name, a in hidden.items()} == {
        "fc1": (3, 4, 6),
        "fc2": (3, 4, 6),
    }
    for index, member in enumerate(population.members()):
        own_outputs, own_hidden = member.forward_with_hidden(x, edit=edit)
        assert torch.allclose(outputs[index], own_outputs, atol=1e-6)
        assert all(torch.allclose(hidden[name][index], own_hidden[name], atol=1e-6) for name in own_hidden)


def test_forward_with_hidden_runs_under_vmap(residual_mlp):
    """A single model's call, batched over chunks of inputs by torch.func.vmap, is the call on each chunk."""
    model = small("ResidualMLP")
    chunks = torch.randn(3, 4, 5)
    outputs, hidden = torch.func.vmap(model.forward_with_hidden)(chunks)
    for index, chunk in enumerate(chunks):
        own_outputs, own_hidden = model.forward_with_hidden(chunk)
        assert torch.allclose(outputs[index], own_outputs, atol=1e-6)
        assert all(torch.allclose(hidden[name][index], own_hidden[name], atol=1e-6) for name in own_hidden)


def test_the_base_is_no_network():
    with pytest.raises(ZooError, match="ZooModule is the base of zoo's architectures; choose one: ColumNet, FCNet"):
        ZooModule()


def test_a_model_name_is_registered_once():
    with pytest.raises(ValueError, match="a model named 'FCNet' is already registered"):
        register_model(type("FCNet", (ZooModule,), {}))


def test_a_cell_run_again_replaces_its_architecture_and_a_checkpoint_names_the_module_to_import(residual_mlp, tmp_path):
    """A notebook cell defining a registered class twice raised 'already registered'; a checkpoint of an
    architecture registered outside zoo said zoo lacked it, as if to upgrade zoo."""
    import pytorch_lightning as pl

    again = register_model(type("ResidualMLP", (residual_mlp,), {"__module__": residual_mlp.__module__}))
    assert _MODELS["ResidualMLP"] is again
    _MODELS["ResidualMLP"] = residual_mlp
    model = residual_mlp(input_shape=(4,), num_outputs=3)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams)}
    checkpoint["pytorch-lightning_version"] = pl.__version__
    model.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "residual.ckpt")
    _MODELS.pop("ResidualMLP")  # a new session that has not imported it
    try:
        with pytest.raises(ZooError, match="holds a ResidualMLP, defined in module 'residual_mlp', which registers"):
            zoo.load_model(tmp_path / "residual.ckpt")
    finally:
        _MODELS["ResidualMLP"] = residual_mlp
