"""Sparse Evolutionary Training: the policy, the rewiring of both backends, the optimizer state, the callback."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import yaml
from conftest import CONFIGS, TORCH_SPARSE
from helpers import StopAfter
from pytorch_lightning.callbacks import ModelCheckpoint
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from zoo import ZooDataModule
from zoo.callbacks import SET
from zoo.callbacks.set import carry_optimizer_state, sparse_layers
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models import SparseLinear, SparseNet, create_model
from zoo.models.set import draw_regrowth, fan_in, fan_out, select_removal, set_step, step_generator

BACKENDS = ["masked", "sparse", TORCH_SPARSE]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def trained_layer(backend: str, steps: int = 5, seed: int = 3, dtype=torch.float32) -> SparseLinear:
    """A 50→40 layer at 10% density whose weights moved off their initial values."""
    torch.manual_seed(0)
    layer = SparseLinear(50, 40, 0.1, backend, seed=seed).to(dtype)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.05)
    x = torch.randn(32, 50, dtype=dtype)
    for _ in range(steps):
        optimizer.zero_grad()
        layer(x).square().mean().backward()
        optimizer.step()
    return layer


def by_position(layer: SparseLinear, tensor: torch.Tensor) -> dict[int, float]:
    """Per-connection values of a tensor shaped like the layer's connection parameter, keyed by flat position."""
    positions = layer.positions()
    values = tensor.flatten()[positions] if layer.backend == "masked" else tensor
    return dict(zip(positions.tolist(), values.tolist()))


@pytest.mark.parametrize("backend", BACKENDS)
def test_connection_count_is_constant_across_steps(backend):
    layer = trained_layer(backend)
    count = layer.connections
    for epoch in range(1, 8):
        before = set(layer.positions().tolist())
        step = set_step(layer, 0.3, step_generator(layer.seed, 1, epoch))
        after = set(layer.positions().tolist())
        assert layer.connections == len(after) == count == step.connections
        assert int(layer.connectivity().sum()) == count
        assert int(fan_in(layer).sum()) == int(fan_out(layer).sum()) == count
        assert step.removed == step.regrown == round(0.3 * 200)  # no weight is zero yet: 30% of each sign
        assert step.new == len(after - before) and 0 < step.new <= step.regrown
        with torch.no_grad():  # let the regrown connections learn something before the next step
            layer.connection_parameter.add_(0.01 * torch.randn_like(layer.connection_parameter))
            if backend == "masked":
                layer.weight.mul_(layer.mask)


def test_removal_is_separate_among_positive_and_negative_weights():
    # global magnitude would remove the six negatives; SET removes 30% of each sign, and every zero
    positives, negatives = torch.arange(1.0, 11.0), -torch.arange(1.0, 11.0) / 16  # exact in float32
    weights = torch.stack([positives, negatives], 1).flatten()  # interleaved: 1, -1/16, 2, -2/16, ...
    weights = torch.cat([weights, torch.zeros(2)])
    removal = select_removal(weights, 0.3)
    removed = sorted(weights[removal.mask].tolist())
    assert removed == [-3 / 16, -2 / 16, -1 / 16, 0.0, 0.0, 1.0, 2.0, 3.0]
    assert (removal.positive, removal.negative, removal.zero) == (3, 3, 2)

    # the same through a layer: the connections holding those weights go, the others keep their weights
    layer = SparseLinear(10, 10, 0.22, "sparse", seed=0)
    with torch.no_grad():
        layer.values.copy_(weights)
    positions = layer.positions()
    step = set_step(layer, 0.3, step_generator(0, 1, 1))
    after = by_position(layer, layer.values.detach())
    assert step.removed == step.regrown == 8 and len(after) == 22
    assert all(after[p] == w for p, w in zip(positions[~removal.mask].tolist(), weights[~removal.mask].tolist()))
    assert sorted(after.values()).count(0.0) == 8  # the regrown ones start at zero


def test_ties_go_to_the_earlier_connection():
    removal = select_removal(torch.tensor([0.5, 0.5, 0.5, 0.5, -1.0, -1.0]), 0.5)
    assert removal.mask.tolist() == [True, True, False, False, True, False]


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_topology(backend):
    def evolve(seed: int, epochs: range) -> torch.Tensor:
        layer = trained_layer(backend, seed=seed)
        for epoch in epochs:
            set_step(layer, 0.3, step_generator(layer.seed, 1, epoch))
        return layer.connectivity()

    assert torch.equal(evolve(3, range(1, 4)), evolve(3, range(1, 4)))
    assert not torch.equal(evolve(3, range(1, 4)), evolve(3, range(2, 5)))  # the epoch enters the draw
    first = step_generator(3, 1, 1)
    assert not torch.equal(torch.rand(5, generator=first), torch.rand(5, generator=step_generator(3, 2, 1)))
    assert not torch.equal(
        torch.rand(5, generator=step_generator(3, 1, 1)), torch.rand(5, generator=step_generator(4, 1, 1))
    )


def test_regrowth_is_uniform_over_empty_positions_only():
    occupied = torch.arange(0, 100, 2)  # every even position of a 10×10 layer
    drawn = draw_regrowth(occupied, (10, 10), 50, step_generator(0, 1, 1))
    assert drawn.tolist() == list(range(1, 100, 2))  # all the empty ones, ascending
    counts = torch.zeros(100)
    for epoch in range(400):
        counts[draw_regrowth(occupied, (10, 10), 5, step_generator(0, 1, epoch))] += 1
    assert counts[occupied].sum() == 0
    assert counts[1::2].min() > 15 and counts[1::2].max() < 65  # 40 expected each: not stuck on a few
    with pytest.raises(ValueError, match="cannot grow 51 connections: only 50 positions are empty"):
        draw_regrowth(occupied, (10, 10), 51, step_generator(0, 1, 1))


def test_backends_rewire_alike():
    masked, sparse = trained_layer("masked", dtype=torch.float64), trained_layer("sparse", dtype=torch.float64)
    with torch.no_grad():  # the exact same weights
        sparse.values.copy_(masked.dense_weight()[masked.mask])
        sparse.bias.copy_(masked.bias)
    x = torch.randn(8, 50, dtype=torch.float64)
    for epoch in range(1, 4):
        set_step(masked, 0.3, step_generator(3, 1, epoch))
        set_step(sparse, 0.3, step_generator(3, 1, epoch))
        assert torch.equal(masked.connectivity(), sparse.connectivity())
        assert torch.equal(masked.dense_weight(), sparse.dense_weight())
        assert torch.allclose(masked(x), sparse(x), atol=1e-12)
        with torch.no_grad():
            masked.weight.add_(torch.randn_like(masked.weight)).mul_(masked.mask)
            sparse.values.copy_(masked.dense_weight()[masked.mask])
    # the CSR structure is valid: the transposed index and both row pointers match the new pattern
    dense = sparse.dense_weight().detach()
    assert torch.equal(sparse.crow, dense.to_sparse_csr().crow_indices())
    assert torch.equal(sparse.crow_t, dense.t().to_sparse_csr().crow_indices())
    assert torch.equal(sparse.values.detach()[sparse.transposed], dense.t().to_sparse_csr().values())
    upstream = torch.randn(8, 40, dtype=torch.float64)
    grads = torch.autograd.grad((sparse(x) * upstream).sum(), sparse.values)[0]
    reference = torch.autograd.grad((masked(x) * upstream).sum(), masked.weight)[0][masked.mask]
    assert torch.allclose(grads, reference, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "optimizer",
    [
        lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1),
        lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.01, amsgrad=True),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01),
    ],
    ids=["AdamW", "Adam-amsgrad", "SGD-momentum"],
)
def test_no_weight_outside_the_mask_is_ever_nonzero(backend, optimizer):
    torch.manual_seed(0)
    model = SparseNet(hidden=[40, 30], density=0.15, backend=backend, input_shape=(12,), num_outputs=3)
    optimizer = optimizer(model.parameters())
    x, y = torch.randn(64, 12), torch.randint(0, 3, (64,))
    layers = list(sparse_layers(model).values())
    fresh: dict[int, set[int]] = {}
    for epoch in range(1, 5):
        for _ in range(6):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            for layer in layers:
                mask = layer.connectivity()
                assert (layer.dense_weight()[~mask] == 0).all()
                if backend == "masked":  # the stored dense weight and its gradient, not only the product
                    assert (layer.weight[~mask] == 0).all() and (layer.weight.grad[~mask] == 0).all()
        for index, layer in enumerate(layers):
            if index in fresh:  # the connections grown at the last step have learned since, but into dead units
                weights = by_position(layer, layer.connection_parameter.detach())
                grads = by_position(layer, layer.connection_parameter.grad)
                assert all(weights[position] != 0 or grads[position] == 0 for position in fresh[index])
                assert sum(weights[position] != 0 for position in fresh[index]) >= 0.5 * len(fresh[index])
            before = set(layer.positions().tolist())
            step = set_step(layer, 0.3, step_generator(layer.seed, index + 1, epoch))
            carry_optimizer_state(optimizer, layer.connection_parameter, step.move)
            weights = by_position(layer, layer.connection_parameter.detach())
            fresh[index] = set(weights) - before
            assert fresh[index] and all(weights[position] == 0 for position in fresh[index])
            assert (layer.dense_weight()[~layer.connectivity()] == 0).all()
            if backend == "masked":
                assert (layer.weight[~layer.mask] == 0).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["Adam", "SGD"])
def test_optimizer_state_is_reset_where_connections_changed_and_kept_elsewhere(backend, kind):
    layer = trained_layer(backend)
    if kind == "Adam":
        optimizer = torch.optim.Adam(layer.parameters(), lr=0.01)
    else:
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(16, 50)
    for _ in range(3):
        optimizer.zero_grad()
        layer(x).square().mean().backward()
        optimizer.step()
    parameter = layer.connection_parameter
    state = optimizer.state[parameter]
    names = ["exp_avg", "exp_avg_sq"] if kind == "Adam" else ["momentum_buffer"]
    before = {name: by_position(layer, state[name]) for name in names}
    assert all(all(value != 0 for value in values.values()) for values in before.values())
    step_count = state["step"].clone() if kind == "Adam" else None
    positions = set(layer.positions().tolist())

    positions = layer.positions().clone()
    step = set_step(layer, 0.3, step_generator(layer.seed, 1, 1))
    assert carry_optimizer_state(optimizer, parameter, step.move) == len(names)
    removed = set(positions[step.removal.mask].tolist())
    kept = set(positions.tolist()) - removed
    regrown = set(layer.positions().tolist()) - kept
    assert len(regrown) == step.regrown and len(kept) == step.connections - step.regrown
    for name in names:
        after = by_position(layer, state[name])
        assert all(after[position] == before[name][position] for position in kept), f"{name} of a kept connection"
        assert all(after[position] == 0 for position in regrown), f"{name} of a regrown connection"
        if backend == "masked":  # the dense state is zero at every removed position too
            assert (state[name].flatten()[sorted(removed)] == 0).all()
    if kind == "Adam":
        assert torch.equal(state["step"], step_count)  # the shared step count is not per connection


@pytest.mark.parametrize("backend", ["masked", "sparse"])
def test_the_callback_rewires_every_sparse_layer_and_moves_its_optimizer_state(backend):
    torch.manual_seed(0)
    model = SparseNet(hidden=[40, 30], density=0.15, backend=backend, input_shape=(12,), num_outputs=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(3):
        optimizer.zero_grad()
        F.cross_entropy(model(torch.randn(32, 12)), torch.randint(0, 3, (32,))).backward()
        optimizer.step()
    layers = model.sparse_layers
    before = [
        (set(layer.positions().tolist()), by_position(layer, optimizer.state[layer.connection_parameter]["exp_avg"]))
        for layer in layers
    ]
    trainer = SimpleNamespace(current_epoch=2, optimizers=[optimizer], is_global_zero=False)
    SET(zeta=0.3, every_n_epochs=2).on_train_epoch_start(trainer, model)
    for layer, (positions, state) in zip(layers, before):
        after = by_position(layer, optimizer.state[layer.connection_parameter]["exp_avg"])
        kept = positions & set(after)
        assert set(after) != positions and len(kept) >= 0.7 * len(positions)
        assert all(after[position] in (state[position], 0) for position in kept)  # 0: removed, regrown in place
        assert sum(after[position] == state[position] for position in kept) >= 0.6 * len(positions)
        assert sum(after[position] != 0 for position in kept) >= 0.3 * len(positions)  # not all dead units
        assert sum(after[position] == 0 for position in set(after) - positions) == len(set(after) - positions) > 0
        if backend == "masked":  # removed positions: state zero, so Adam never moves their weight again
            moment = optimizer.state[layer.weight]["exp_avg"]
            assert (moment[~layer.mask] == 0).all()


def test_a_failure_to_log_costs_the_run_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no figure today")

    monkeypatch.setattr("zoo.analyses.topology.degree_histograms", broken)
    folder = str(tmp_path)  # no logger: the run folder is the trainer's root, as Lightning's log_dir says
    trainer = SimpleNamespace(
        fast_dev_run=False, log_dir=folder, default_root_dir=folder, global_step=0, loggers=[], is_global_zero=True
    )
    model = SparseNet(hidden=[8], density=0.5, input_shape=(4,), num_outputs=3)
    with pytest.warns(UserWarning, match="SET's logs after epoch 3 failed, training goes on: no figure today"):
        SET().write(trainer, model, 3)
    assert "RuntimeError: no figure today" in (tmp_path / "analysis" / "set" / "errors.log").read_text()


def test_rewire_refuses_what_would_change_the_count_or_double_a_connection():
    layer = SparseLinear(10, 10, 0.2, "sparse", seed=0)
    present, empty = layer.positions(), (~layer.connectivity().flatten()).nonzero().squeeze(1)
    with pytest.raises(ValueError, match="keeps the connection count: 2 removed, 1 regrown"):
        layer.rewire(present[:2], empty[:1])
    with pytest.raises(ValueError, match=f"position {int(empty[0])} is removed but holds no connection"):
        layer.rewire(empty[:1], empty[1:2])
    with pytest.raises(ValueError, match="regrown positions must be distinct and not connected"):
        layer.rewire(present[:1], present[1:2])
    assert layer.connections == 20 and torch.equal(layer.positions(), present)  # nothing changed


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"zeta": 0}, r"SET: zeta must lie strictly between 0 and 1 \(the fraction of weights rewired\), got 0"),
        ({"zeta": 1}, "zeta must lie strictly between 0 and 1"),
        ({"zeta": -0.3}, "got -0.3"),
        ({"every_n_epochs": 0}, "SET: every_n_epochs must be an integer of at least 1, got 0"),
        ({"every_n_epochs": 1.5}, "every_n_epochs must be an integer of at least 1, got 1.5"),
        (
            {"until_epoch": 0},
            r"SET: until_epoch must be an integer of at least 1 \(null: rewire until the end\), got 0",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ZooError, match=message):
        SET(**kwargs)


def test_model_without_sparse_layers_is_refused():
    with pytest.raises(ZooError, match="SET: FCNet has no sparse layers to rewire; SET trains a SparseNet"):
        SET().setup(None, create_model("FCNet", hidden=[8], input_shape=(4,), num_outputs=3), "fit")


def test_sparse_layers_are_named_as_the_activations_they_compute():
    """SET's figures and scalars name a layer as every other analysis names its activations (not layer1, ...)."""
    model = SparseNet(hidden=[8, 6], density=0.5, sparse_output=True, input_shape=(4,), num_outputs=3)
    named = sparse_layers(model)
    assert list(named) == [*model.probes, "output"] == ["sparse1", "sparse2", "output"]
    assert named["sparse2"] is model.blocks[1][0] and named["output"] is model.head


def test_schedule():
    assert [e for e in range(10) if SET().rewires_before(e)] == list(range(1, 10))
    assert [e for e in range(10) if SET(every_n_epochs=3, until_epoch=6).rewires_before(e)] == [3, 6]


def test_set_config_is_at_most_five_percent_of_dense():
    spec = yaml.safe_load((CONFIGS / "set.yaml").read_text())["model"]["init_args"]
    model = SparseNet(**spec)
    widths = [784, *spec["hidden"], 10]
    dense = sum(a * b for a, b in zip(widths, widths[1:]))
    connections = sum(layer.connections for layer in model.sparse_layers) + model.head.weight.numel()
    assert spec["hidden"] == [1000, 1000, 1000] and spec["epsilon"] == 20
    assert dense == 2_794_000 and connections == 115_680 + 10_000 and connections / dense <= 0.05


def fit(*flags: str):
    return main(["fit", "--config", str(CONFIGS / "iris.yaml"), *QUIET, "--model", "SparseNet", *flags])


def test_callback_from_the_cli_writes_its_logs(run_dir, data_dir, capsys):
    callbacks = "[{class_path: zoo.callbacks.SET, init_args: {zeta: 0.3, until_epoch: 2}}]"
    main(
        ["fit", "--config", str(CONFIGS / "sparsenet.yaml"), *QUIET]
        + ["--model.hidden", "[32]", "--trainer.max_epochs", "4", "--trainer.callbacks", callbacks]
        + ["--trainer.limit_train_batches", "3", "--trainer.limit_val_batches", "1"]
    )
    folder = run_dir / "lightning_logs" / "sparsenet" / "version_0"
    analysis = folder / "analysis" / "set"
    assert "analysis/set  (3 results, last epoch_001.json)" in capsys.readouterr().out  # the closing summary
    # before training, then before epochs 1 and 2 (after epochs 0 and 1); until_epoch 2 stops it there
    assert sorted(path.name for path in analysis.glob("*.json")) == [
        "epoch_000.json",
        "epoch_001.json",
        "epoch_init.json",
    ]
    assert {path.name for path in analysis.glob("*.png")} == {
        f"{kind}_epoch_{label}.png" for kind in ("input_connections", "fan_in") for label in ("init", "000", "001")
    }
    initial = json.loads((analysis / "epoch_init.json").read_text())
    step = json.loads((analysis / "epoch_001.json").read_text())
    connections = round(0.1 * 784 * 32)
    for result in (initial, step):
        layer = result["layers"]["sparse1"]
        assert layer["module"] == "blocks.0.0" and layer["shape"] == [32, 784]
        assert layer["connections"] == result["connections"] == connections
        assert sum(result["input_connections"]) == connections and len(result["input_connections"]) == 784
        assert sum(layer["fan_in"]["counts"]) == 32
        assert sum(degree * units for degree, units in enumerate(layer["fan_in"]["counts"])) == connections
    assert initial["changed_fraction"] is None and step["epoch"] == 1  # no step before training
    removed = step["layers"]["sparse1"]["removed"]
    assert step["layers"]["sparse1"]["regrown"] == removed["positive"] + removed["negative"] + removed["zero"]
    assert 0.2 < step["changed_fraction"] <= step["layers"]["sparse1"]["regrown"] / connections

    events = EventAccumulator(str(folder), size_guidance={"images": 0, "histograms": 0})
    events.Reload()
    assert {"set/input_connections", "set/fan_in"} <= set(events.Tags()["images"])
    assert "set/sparse1/fan_in" in events.Tags()["histograms"]
    logged = events.Scalars("set/changed_fraction")
    assert len(logged) == 2 and logged[-1].value == pytest.approx(step["changed_fraction"])
    assert [event.step for event in logged] == [3, 6]  # before epochs 1 and 2, 3 steps an epoch
    # the checkpoint carries the evolved topology: the last step's, not the initial one
    model = SparseNet(hidden=[32], density=0.1, backend="sparse")
    model.load_state_dict(torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    assert fan_out(model.sparse_layers[0]).tolist() == step["input_connections"] != initial["input_connections"]


def set_run(folder, backend: str, stop_after: int | None = None, resume: bool = False) -> pl.Trainer:
    """A 3-epoch SET run of a small SparseNet with dropout on iris, checkpointed every epoch, in-process."""
    pl.seed_everything(0)
    model = SparseNet(hidden=[24, 16], density=0.3, backend=backend, dropout=0.2, input_shape=(4,), num_outputs=3)
    callbacks = [SET(zeta=0.3), ModelCheckpoint(dirpath=folder, save_last=True)]  # no monitor: every epoch
    callbacks += [StopAfter(stop_after)] if stop_after is not None else []
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=callbacks,
        logger=False,
        default_root_dir=folder,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, ZooDataModule("iris", batch_size=16), ckpt_path=folder / "last.ckpt" if resume else None)
    return trainer


@pytest.mark.parametrize("backend", ["masked", "sparse"])
def test_killed_and_resumed_set_run_ends_bit_identical(tmp_path, backend):
    straight = set_run(tmp_path / "straight", backend)
    set_run(tmp_path / "killed", backend, stop_after=1)  # rewired once, before epoch 1
    assert torch.load(tmp_path / "killed" / "last.ckpt", weights_only=True)["epoch"] == 1
    resumed = set_run(tmp_path / "killed", backend, resume=True)  # rewires before epoch 2
    assert straight.current_epoch == resumed.current_epoch == 3 and straight.global_step == resumed.global_step
    expected, actual = straight.lightning_module.state_dict(), resumed.lightning_module.state_dict()
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(actual[name], tensor), name
    expected, actual = straight.optimizers[0].state_dict()["state"], resumed.optimizers[0].state_dict()["state"]
    for index, state in expected.items():
        for key, tensor in state.items():
            assert torch.equal(actual[index][key], tensor), (index, key)
    # the topology did evolve, so this is not the equality of two unchanged networks
    initial = SparseNet(hidden=[24, 16], density=0.3, backend=backend, input_shape=(4,), num_outputs=3)
    key = "blocks.0.0.mask" if backend == "masked" else "blocks.0.0.cols"
    assert not torch.equal(initial.state_dict()[key], straight.lightning_module.state_dict()[key])
    for label in ("000", "001"):  # both runs logged the same steps
        logged = [
            json.loads((tmp_path / run / "analysis" / "set" / f"epoch_{label}.json").read_text())
            for run in ("straight", "killed")
        ]
        assert logged[0]["layers"] == logged[1]["layers"] and logged[0]["changed_fraction"] > 0
