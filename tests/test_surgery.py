"""Surgery (zoo.surgery) against independent computations: the original network's outputs, an
explicit projection of activations (FCNet and ColumNet), the sources of a merge, and the CLI
reading what it writes."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS
from test_callbacks import run_script
from torchmetrics.functional.classification import multiclass_accuracy

import zoo
from zoo.analysis import activation_analysis
from zoo.analysis.activations import collect_activations, compression, principal_components
from zoo.cli import main
from zoo.errors import ZooError
from zoo.models import ColumNet, FCNet, Population, SparseNet
from zoo.surgery import compress, compress_to_tolerance, merge, prune_dead
from zoo.surgery.command import main as command_main
from zoo.surgery.command import parser, run
from zoo.surgery.export import export
from zoo.surgery.prune import varied_elsewhere

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
DEAD = {0: [1, 3], 1: [0]}  # planted dead units: hidden layer index -> units


def outputs(model, x):
    with model.analysis_mode(), torch.no_grad():
        return model(x)


def plant_dead(model, linears, value=-100.0):
    """Drive the planted units' pre-activations far negative: a ReLU there is exactly 0 on any input."""
    with torch.no_grad():
        for index, units in DEAD.items():
            linears[index].bias[units] = value
    return model


def networks():
    torch.manual_seed(0)
    kwargs = {"input_shape": (5,), "num_outputs": 3}
    fc = FCNet(hidden=[8, 6], **kwargs)
    normed = FCNet(hidden=[8, 6], batch_norm=True, **kwargs)
    columns = ColumNet(hidden=[8, 6], activations=["relu", "relu"], **kwargs)
    masked = SparseNet(hidden=[8, 6], density=0.6, **kwargs)
    csr = SparseNet(hidden=[8, 6], density=0.6, backend="sparse", sparse_output=True, **kwargs)
    return {
        "fc": plant_dead(fc, [block[0] for block in fc.blocks]),
        "batch_norm": plant_dead(normed, [block[1] for block in normed.blocks]),  # shifts after the norm
        "columnet": plant_dead(columns, [block[0] for block in columns.columns[1]]),
        "sparse_masked": plant_dead(masked, [block[0] for block in masked.blocks]),
        "sparse_csr": plant_dead(csr, [block[0] for block in csr.blocks]),
    }


@pytest.mark.parametrize("name", ["fc", "batch_norm", "columnet", "sparse_masked", "sparse_csr"])
def test_prune_removes_the_planted_dead_units_and_keeps_the_outputs(name):
    model = networks()[name].eval()
    x = torch.randn(400, 5)
    pruned, report = prune_dead(model, x)
    with model.analysis_mode(), torch.no_grad():
        hidden = model.forward_with_hidden(x)[1]
    constant = {layer: (h.amax(0) == h.amin(0)).nonzero().flatten().tolist() for layer, h in hidden.items()}
    layers = list(model.probes)[-2:]  # the column with the planted units, or the whole net
    assert all(set(DEAD[index]) <= set(constant[layer]) for index, layer in enumerate(layers))
    assert report.removed == constant  # planted, and any a sparse layer's few connections left silent
    assert {layer: pruned.probes[layer].units for layer in hidden} == {
        layer: h.shape[1] - len(constant[layer]) for layer, h in hidden.items()
    }
    torch.testing.assert_close(outputs(pruned, x), outputs(model, x), atol=1e-5, rtol=1e-5)
    fresh = torch.randn(300, 5)  # the planted units are dead on any input: equal there too
    torch.testing.assert_close(outputs(pruned, fresh), outputs(model, fresh), atol=1e-5, rtol=1e-5)
    assert report.parameters_after["nonzero"] == pruned.parameter_counts()["nonzero"]
    assert report.parameters_after["nonzero"] < report.parameters_before["nonzero"]


def test_pruned_parameter_count_is_the_smaller_architectures():
    model = networks()["fc"].eval()
    pruned, report = prune_dead(model, torch.randn(200, 5))
    # 5 -> 6 -> 5 -> 3, counted by hand: weights and biases
    assert report.parameters_after["nonzero"] == (5 * 6 + 6) + (6 * 5 + 5) + (5 * 3 + 3)


def test_sparse_pruning_keeps_the_surviving_connectivity():
    model = networks()["sparse_csr"].eval()
    pruned, report = prune_dead(model, torch.randn(200, 5))
    first, second = model.sparse_layers[0].connectivity(), model.sparse_layers[1].connectivity()
    alive1 = [unit for unit in range(8) if unit not in report.removed["sparse1"]]
    alive2 = [unit for unit in range(6) if unit not in report.removed["sparse2"]]
    assert torch.equal(pruned.sparse_layers[0].connectivity(), first[alive1])
    assert torch.equal(pruned.sparse_layers[1].connectivity(), second[alive2][:, alive1])
    rebuilt = SparseNet(**pruned.hparams)  # the config alone builds tensors of the pruned sizes
    rebuilt.load_state_dict(pruned.state_dict())
    x = torch.randn(50, 5)
    torch.testing.assert_close(outputs(rebuilt, x), outputs(model, x), atol=1e-5, rtol=1e-5)


def test_a_layer_whose_units_all_die_keeps_one_that_carries_the_constant():
    torch.manual_seed(1)
    model = FCNet(hidden=[4, 3], input_shape=(5,), num_outputs=2).eval()
    with torch.no_grad():
        model.blocks[1][0].bias[:] = -100.0
    x = torch.randn(100, 5)
    pruned, report = prune_dead(model, x)
    assert pruned.hparams["hidden"][1] == 1 and report.kept_dead == {"fc2": 1}
    torch.testing.assert_close(outputs(pruned, x), outputs(model, x))


def test_exact_pruning_keeps_a_unit_that_is_dead_by_definition_but_fires_once():
    torch.manual_seed(0)
    model = FCNet(hidden=[2], input_shape=(1,), num_outputs=2).eval()
    with torch.no_grad():
        model.blocks[0][0].weight[:] = torch.tensor([[1.0], [1.0]])
        model.blocks[0][0].bias[:] = torch.tensor([0.0, 5.0])  # unit 0: relu(x), unit 1: relu(x + 5)
    x = torch.cat([-torch.rand(999, 1), torch.tensor([[1e-3]])])  # unit 0 fires once, weakly: variance ~1e-9
    pruned, report = prune_dead(model, x)
    assert report.removed == {"fc1": []} and report.kept_varying == {"fc1": [0]}
    approximate, loose = prune_dead(model, x, exact=False)
    assert loose.removed == {"fc1": [0]} and approximate.hparams["hidden"] == [1]
    assert 0 < (outputs(approximate, x) - outputs(model, x)).abs().max() < 1e-2


def test_a_unit_silent_on_the_judged_samples_may_fire_elsewhere_and_is_reported():
    torch.manual_seed(0)
    model = FCNet(hidden=[2], input_shape=(1,), num_outputs=2).eval()
    with torch.no_grad():
        model.blocks[0][0].weight[:] = torch.tensor([[1.0], [1.0]])
        model.blocks[0][0].bias[:] = torch.tensor([0.0, 5.0])  # unit 0: relu(x), silent for x < 0
    judged, elsewhere = -torch.rand(100, 1), torch.linspace(-1, 1, 21)[:, None]
    pruned, report = prune_dead(model, judged)
    assert report.removed == {"fc1": [0]}
    torch.testing.assert_close(outputs(pruned, judged), outputs(model, judged))
    assert varied_elsewhere(model, report, elsewhere) == {"fc1": (1, 10)}  # x = 0.1 ... 1
    differs = (outputs(pruned, elsewhere) - outputs(model, elsewhere)).abs().amax(1) > 1e-6
    assert differs.tolist() == [False] * 11 + [True] * 10


def iris_like(n=300, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=generator)
    return x, (x[:, 0] + x[:, 1] ** 2 > 1).long() + (x[:, 2] > 0.5).long()


@pytest.mark.parametrize("k", [1, 2, 5])
def test_compressed_network_computes_the_explicit_projection(k):
    torch.manual_seed(2)
    model = FCNet(hidden=[8, 6], input_shape=(5,), num_outputs=3).eval()
    x, y = iris_like()
    with torch.no_grad():
        values = collect_activations(model, x, ["fc1"])["fc1"]
        mean, _, axes = principal_components(values)
        basis = axes[:, :k]
        projected, _ = model.forward_with_hidden(
            x, edit=lambda name, h: (h - mean) @ basis @ basis.t() + mean if name == "fc1" else h
        )
    compressed = compress(model, x, "fc1", k)
    assert compressed.hparams["rank"] == [k, None]
    torch.testing.assert_close(outputs(compressed, x), projected, atol=1e-5, rtol=1e-5)
    assert compressed.parameter_counts()["nonzero"] == (5 * 8 + 8) + (8 * k + k * 6 + 6) + (6 * 3 + 3)
    predicted = compression(model, x, y, "fc1", mean, axes, tolerance=0.0)
    if k in predicted.k:
        accuracy = multiclass_accuracy(outputs(compressed, x), y, 3, average="micro").item()
        assert abs(accuracy - predicted.score[predicted.k.index(k)]) <= 1e-4


def test_compression_composes_with_an_already_low_rank_layer():
    torch.manual_seed(3)
    model = FCNet(hidden=[8, 6], input_shape=(5,), num_outputs=3, rank=[3, None]).eval()
    x, _ = iris_like()
    again = compress(model, x, "fc1", 8)  # projected on all its axes the layer passes on what it did
    assert again.hparams["rank"] == [8, None]
    torch.testing.assert_close(outputs(again, x), outputs(model, x), atol=1e-4, rtol=1e-4)
    head = compress(model, x, "fc2", 2)
    assert head.hparams["rank"] == [3, 2]
    with pytest.raises(ZooError, match="unknown layer 'fc9'"):
        compress(model, x, "fc9", 2)
    with pytest.raises(ZooError, match="must lie in 1..8"):
        compress(model, x, "fc1", 9)


def test_compress_to_tolerance_keeps_the_metric_within_it():
    torch.manual_seed(4)
    model = FCNet(hidden=[16, 16], input_shape=(5,), num_outputs=3).eval()
    x, y = iris_like(600)
    compressed, report = compress_to_tolerance(model, x, y, tolerance=0.02)
    accuracy = multiclass_accuracy(outputs(compressed, x), y, 3, average="micro").item()
    assert accuracy == pytest.approx(report.after, abs=1e-6)
    assert report.before - accuracy <= 0.02 + 1e-6
    assert report.k  # some layer was compressed, and each only where it saves weights
    readers = {"fc1": 16, "fc2": 3}  # outputs of the layer that reads each
    for layer, k in report.k.items():
        assert compressed.hparams["rank"][list(model.probes).index(layer)] == k
        assert k * (16 + readers[layer]) < 16 * readers[layer]
    assert compressed.parameter_counts()["nonzero"] < model.parameter_counts()["nonzero"]


def columnets():
    """A ColumNet of equal columns (the batched forward) and one of unequal columns (column by column)."""
    torch.manual_seed(6)
    kwargs = {"input_shape": (5,), "num_outputs": 3}
    equal = ColumNet(hidden=[8, 6], activations=["relu", "tanh"], **kwargs)
    columns = [
        {"hidden": [8, 6], "activation": "relu"},
        {"hidden": [7], "activation": "tanh"},
        {"hidden": [5, 4], "activation": "sigmoid"},
    ]
    return {"equal": equal.eval(), "unequal": ColumNet(columns=columns, **kwargs).eval()}


@pytest.mark.parametrize(
    ("name", "layer", "k", "reader"),  # reader: the outputs of what reads the layer (the head's: 3)
    [
        ("equal", "col1_relu/fc1", 2, 6),
        ("equal", "col2_tanh/fc2", 1, 3),
        ("unequal", "col1_relu/fc2", 2, 3),  # the head's first block
        ("unequal", "col2_tanh/fc1", 3, 3),  # a one-layer column: the head's middle block
        ("unequal", "col3_sigmoid/fc1", 4, 4),
    ],
)
def test_compressed_columnet_computes_the_explicit_projection(name, layer, k, reader):
    model = columnets()[name]
    x, y = iris_like()
    with torch.no_grad():
        values = collect_activations(model, x, [layer])[layer]
        mean, _, axes = principal_components(values)
        basis = axes[:, :k]
        projected, _ = model.forward_with_hidden(
            x, edit=lambda probe, h: (h - mean) @ basis @ basis.t() + mean if probe == layer else h
        )
    compressed = compress(model, x, layer, k)
    assert [rank for column in compressed.hparams["rank"] for rank in column] == [
        k if probe == layer else None for probe in model.probes
    ]
    torch.testing.assert_close(outputs(compressed, x), projected, atol=1e-5, rtol=1e-5)
    width = values.shape[1]
    saved = model.parameter_counts()["nonzero"] - compressed.parameter_counts()["nonzero"]
    assert saved == width * reader - k * (width + reader)
    predicted = compression(model, x, y, layer, mean, axes, tolerance=0.0)  # every k scored at these widths
    accuracy = multiclass_accuracy(outputs(compressed, x), y, 3, average="micro").item()
    assert abs(accuracy - predicted.score[predicted.k.index(k)]) <= 1e-4


def test_columnet_compression_composes_and_refuses_what_it_cannot_do():
    model = columnets()["unequal"]
    x, _ = iris_like()
    twice = compress(compress(model, x, "col3_sigmoid/fc2", 2), x, "col1_relu/fc2", 3)
    assert twice.hparams["rank"] == [[None, 3], [None], [None, 2]]
    again = compress(twice, x, "col3_sigmoid/fc2", 4)  # on all its axes the layer passes on what it did
    assert again.hparams["rank"] == [[None, 3], [None], [None, 4]]
    torch.testing.assert_close(outputs(again, x), outputs(twice, x), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        twice.columns[0][1][0].bias[:2] = -100.0  # two dead units in the layer the head reads through 3 components
    pruned, report = prune_dead(twice, x)  # a compressed ColumNet is still one surgery works on
    assert report.removed["col1_relu/fc2"] == [0, 1] and pruned.hparams["rank"] == twice.hparams["rank"]
    torch.testing.assert_close(outputs(pruned, x), outputs(twice, x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ZooError, match="unknown layer 'col1_relu/fc3'; ColumNet's hidden layers are: col1_relu/fc1"):
        compress(model, x, "col1_relu/fc3", 2)
    with pytest.raises(ZooError, match=r"k for col2_tanh/fc1 must lie in 1..7 \(its width\), got 0"):
        compress(model, x, "col2_tanh/fc1", 0)
    with pytest.raises(ZooError, match="compression exports FCNets and ColumNets .*; this is a SparseNet"):
        compress(networks()["sparse_masked"], x, "sparse1", 2)


def test_columnet_compress_to_tolerance_keeps_the_metric_within_it():
    torch.manual_seed(4)
    model = ColumNet(hidden=[16, 16], activations=["relu", "tanh"], input_shape=(5,), num_outputs=3).eval()
    x, y = iris_like(600)
    compressed, report = compress_to_tolerance(model, x, y, tolerance=0.02)
    accuracy = multiclass_accuracy(outputs(compressed, x), y, 3, average="micro").item()
    assert accuracy == pytest.approx(report.after, abs=1e-6)
    assert report.before - accuracy <= 0.02 + 1e-6
    assert report.k
    ranks = dict(zip(model.probes, (k for column in compressed.hparams["rank"] for k in column)))
    assert ranks == {layer: report.k.get(layer) for layer in model.probes}
    for layer, k in report.k.items():
        reader = 16 if layer.endswith("fc1") else 3
        assert k * (16 + reader) < 16 * reader
    assert compressed.parameter_counts()["nonzero"] < model.parameter_counts()["nonzero"]


def test_merge_puts_the_sources_outputs_side_by_side():
    torch.manual_seed(5)
    kwargs = {"input_shape": (4,), "task": "regression", "activation": "tanh"}
    first, second = FCNet(hidden=[5, 3], num_outputs=1, **kwargs), FCNet(hidden=[4, 6], num_outputs=2, **kwargs)
    merged = merge([first, second])
    assert merged.hparams["hidden"] == [9, 9] and merged.num_outputs == 3
    x = torch.randn(100, 4)
    torch.testing.assert_close(outputs(merged, x), torch.cat([outputs(first, x), outputs(second, x)], 1))
    with pytest.raises(ZooError, match="classify"):
        merge([FCNet(hidden=[3], input_shape=(4,)), FCNet(hidden=[3], input_shape=(4,))])
    with pytest.raises(ZooError, match="activation"):
        merge([first, FCNet(hidden=[2, 2], num_outputs=1, input_shape=(4,), task="regression")])
    members = Population("FCNet", 2, {"hidden": [5, 3], "activation": "tanh"}, input_shape=(4,), task="regression")
    with pytest.raises(ZooError, match="network 2 is a population of 2 and the others are not all populations"):
        merge([first, members])  # once said "network 2 is a Population; merging takes FCNets"


def surgery(*args: str) -> None:
    run(parser().parse_args(list(args)))


@pytest.fixture(scope="module")
def iris_checkpoint(tmp_path_factory) -> str:
    """One trained iris network (3 epochs) for the tests that go through the CLI."""
    folder = tmp_path_factory.mktemp("iris")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        main(["fit", "--config", str(CONFIGS / "iris.yaml"), "--trainer.max_epochs", "3", *QUIET])
    return str(next(folder.rglob("best.ckpt")))


def test_surgery_checkpoints_are_ordinary_zoo_checkpoints(run_dir, iris_checkpoint, capsys):
    best = iris_checkpoint
    surgery("prune", best, "--out", "pruned.ckpt")
    printed = capsys.readouterr().out
    assert "units judged on train" in printed and "parameters:" in printed and "largest |Δ output|" in printed
    config = yaml.safe_load((run_dir / "pruned.yaml").read_text())
    assert config["model"]["class_path"] == "zoo.models.FCNet" and config["data"]["dataset"] == "iris"
    original, pruned = zoo.load_model(best).eval(), zoo.load_model("pruned.ckpt").eval()
    data = zoo.ZooDataModule.load_from_checkpoint("pruned.ckpt")  # as scripts/analyze.py reads a checkpoint
    x, y = data.split("train")
    torch.testing.assert_close(outputs(pruned, x), outputs(original, x), atol=1e-5, rtol=1e-5)
    analysed = activation_analysis(pruned, x, y, maximize=0)
    assert [stats.units for stats in analysed.layers.values()] == pruned.hparams["hidden"]

    tested = main(["test", "--config", "pruned.yaml", "--ckpt_path", "pruned.ckpt", *QUIET])
    reference = main(["test", "--config", str(CONFIGS / "iris.yaml"), "--ckpt_path", best, *QUIET])
    assert tested.trainer.callback_metrics["test/acc"] == reference.trainer.callback_metrics["test/acc"]

    surgery("compress", best, "--k", "fc1=2", "--out", "compressed.ckpt")
    assert zoo.load_model("compressed.ckpt").hparams["rank"] == [2, None]
    predicted = main(["predict", "--config", "compressed.yaml", "--ckpt_path", "compressed.ckpt", *QUIET])
    assert predicted.trainer.state.finished
    capsys.readouterr()
    surgery("compress", best, "--tolerance", "1", "--out", "smallest.ckpt")  # any drop allowed: k = 1 everywhere
    assert zoo.load_model("smallest.ckpt").hparams["rank"] == [1, 1]
    assert "fc1: 16 units -> k = 1 (analysis predicted" in capsys.readouterr().out


def test_analyzed_surgery_results_are_named_by_the_operation(run_dir, iris_checkpoint, monkeypatch, capsys):
    """Surgery's checkpoints record epoch 0; analysed, they were written as epoch_000 and titled epoch 0."""
    surgery("prune", iris_checkpoint, "--out", "pruned.ckpt")
    notes = []
    monkeypatch.setattr("zoo.writer.noted", lambda figure, note: notes.append(note) or figure)
    code, out, err = run_script(
        "analyze.py", "task-separation", "pruned.ckpt", "--max-samples", "40", "--cpu", "--out", "looked",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    written = sorted(path.name for path in (run_dir / "looked" / "task_separation").iterdir())
    assert "epoch_prune.json" in written and "interference_epoch_prune.png" in written, written
    assert not any("000" in name for name in written)
    assert notes and set(notes) == {"after prune"}
    (run_dir / "elsewhere").mkdir()  # outside a run folder: its results beside it, not in the working folder
    (run_dir / "pruned.ckpt").rename(run_dir / "elsewhere" / "pruned.ckpt")
    code, out, err = run_script(
        "analyze.py", "task-separation", "elsewhere/pruned.ckpt", "--max-samples", "40", "--cpu",
        monkeypatch=monkeypatch, capsys=capsys,
    )  # fmt: skip
    assert code == 0, err
    assert (run_dir / "elsewhere" / "analysis_pruned" / "task_separation" / "epoch_prune.json").is_file()
    assert not (run_dir / "analysis_pruned").exists()


def test_compressed_columnet_checkpoints_are_ordinary_zoo_checkpoints(run_dir, capsys):
    torch.manual_seed(7)
    source = ColumNet(hidden=[8, 6], activations=["relu", "tanh"], input_shape=(4,), num_outputs=3).eval()
    iris = {"dataset": "iris", "batch_size": 16, "val_fraction": 0.2}
    export(source, "columnet.ckpt", data=iris, record={"operation": "built", "sources": []})
    surgery("compress", "columnet.ckpt", "--k", "col2_tanh/fc2=2", "--k", "col1_relu/fc1=3", "--out", "k.ckpt")
    config = yaml.safe_load((run_dir / "k.yaml").read_text())
    assert config["model"]["class_path"] == "zoo.models.ColumNet"
    assert config["model"]["init_args"]["rank"] == [[3, None], [None, 2]]
    loaded = zoo.load_model("k.ckpt").eval()
    data = zoo.ZooDataModule.load_from_checkpoint("k.ckpt")
    x = data.split("val")[0]  # the split the axes were taken on
    direct = compress(compress(source, x, "col2_tanh/fc2", 2), x, "col1_relu/fc1", 3)
    torch.testing.assert_close(outputs(loaded, x), outputs(direct, x))
    tested = main(["test", "--config", "k.yaml", "--ckpt_path", "k.ckpt", *QUIET])
    x, y = data.split("test")
    accuracy = multiclass_accuracy(outputs(loaded, x), y, 3, average="micro").item()
    assert tested.trainer.callback_metrics["test/acc"].item() == pytest.approx(accuracy, abs=1e-6)
    capsys.readouterr()
    surgery("compress", "columnet.ckpt", "--tolerance", "1", "--out", "smallest.ckpt")  # any drop: k = 1 everywhere
    assert zoo.load_model("smallest.ckpt").hparams["rank"] == [[1, 1], [1, 1]]
    assert "col2_tanh/fc2: 6 units -> k = 1 (analysis predicted" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        command_main(["compress", "columnet.ckpt", "--k", "col2_tanh/fc3=2", "--out", "bad.ckpt"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("surgery: error: unknown layer 'col2_tanh/fc3'") and len(error.strip().splitlines()) == 1


def test_fit_from_weights_is_a_new_run_that_starts_at_those_weights(run_dir, iris_checkpoint):
    surgery("prune", iris_checkpoint, "--out", "pruned.ckpt")
    said = []
    listener = logging.Handler()
    listener.emit = lambda record: said.append(record.getMessage())
    logging.getLogger("pytorch_lightning").addHandler(listener)
    try:
        started = main(
            ["fit", "--config", "pruned.yaml", "--weights", "pruned.ckpt", "--trainer.limit_train_batches", "0", *QUIET]
        )
    finally:
        logging.getLogger("pytorch_lightning").removeHandler(listener)
    assert "Weights from pruned.ckpt; a new run: its own optimizer, schedule and epochs" in said  # said at the start
    recipe = yaml.safe_load(Path("pruned.yaml").read_text())  # the source's (iris.yaml, 3 epochs), not zoo's defaults
    assert recipe["seed_everything"] == 0 and recipe["trainer"] == {"max_epochs": 3}
    assert recipe["optimizer"]["init_args"]["lr"] == 0.01 and "T_max" not in recipe["lr_scheduler"]["init_args"]
    assert started.trainer.max_epochs == 3 and started.trainer.optimizers[0].defaults["lr"] == 0.01
    weights = zoo.load_model("pruned.ckpt").state_dict()
    for key, value in started.model.state_dict().items():
        torch.testing.assert_close(value, weights[key])
    log_dir = run_dir / "lightning_logs" / "pruned" / "version_0"
    assert yaml.safe_load((log_dir / "config.yaml").read_text())["weights"] == "pruned.ckpt"
    trained = main(["fit", "--config", "pruned.yaml", "--weights", "pruned.ckpt", "--trainer.max_epochs", "2", *QUIET])
    assert trained.trainer.current_epoch == 2  # a fresh epoch count, not the source's
    assert not torch.equal(trained.model.head.weight.cpu(), weights["head.weight"])


def test_fit_from_weights_refuses_what_does_not_fit(run_dir, iris_checkpoint, capsys):
    surgery("prune", iris_checkpoint, "--out", "pruned.ckpt")
    for command, extra, message in [
        ("fit", ["--ckpt_path", "pruned.ckpt"], "or --ckpt_path"),
        ("fit", ["--model.hidden", "[3, 3]"], "does not fit"),
        ("test", [], "test takes --ckpt_path"),
        ("fit", ["--weights", "last"], "--weights takes a checkpoint file's path, got 'last'"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main([command, "--config", "pruned.yaml", "--weights", "pruned.ckpt", *extra, *QUIET])
        assert exit_.value.code == 2
        assert re.search(message, capsys.readouterr().err)


def test_merged_populations_of_single_task_networks_compute_both_tasks(run_dir):
    small = ["--model.hidden", "[4, 4]", "--data.num_samples", "400", "--trainer.max_epochs", "1"]
    for task in (0, 1):
        name = f"--trainer.logger.init_args.name=task{task}"
        common = ["--config", str(CONFIGS / "multimult.yaml"), *small, "--trainer.callbacks", "null", name]
        batch = ["--data.batch_size", str(64 // (task + 1))]  # how the data is read, not which data: merged alike
        batch += ["--data.val_fraction", "0.0834"] if task else []  # 33 of 400 samples, as 1/12 takes: the same split
        main(["fit", *common, *batch, "--data.outputs", f"[{task}]", "--population", "2", *QUIET])
    sources = [str(next((run_dir / "lightning_logs" / f"task{task}").rglob("last.ckpt"))) for task in (0, 1)]
    surgery("merge", *sources, "--out", "merged.ckpt")
    merged = zoo.load_model("merged.ckpt")
    assert merged.size == 2 and merged.hparams["member"]["hidden"] == [8, 8]
    config = yaml.safe_load((run_dir / "merged.yaml").read_text())
    assert config["data"]["outputs"] == [0, 1] and config["data"]["batch_size"] == 64  # the first source's
    x = zoo.ZooDataModule(**config["data"]).split("val")[0]
    for index in range(2):
        apart = [outputs(zoo.load_model(path, member=index), x) for path in sources]
        torch.testing.assert_close(outputs(merged.member(index), x), torch.cat(apart, 1))
    tested = main(["test", "--config", "merged.yaml", "--ckpt_path", "merged.ckpt", *QUIET])
    assert torch.isfinite(tested.trainer.callback_metrics["test/loss"])
    continued = main(["fit", "--config", "merged.yaml", "--weights", "merged.ckpt", "--trainer.max_epochs=1", *QUIET])
    assert continued.trainer.state.finished
    other = ["--config", str(CONFIGS / "multimult.yaml"), *small[:2], "--data.num_samples", "300", "--population", "2"]
    main(["fit", *other, "--trainer.max_epochs", "1", "--trainer.callbacks", "null", "--data.outputs", "[1]", *QUIET])
    elsewhere = str(next((run_dir / "lightning_logs" / "multimult").rglob("last.ckpt")))
    with pytest.raises(ZooError) as refused:
        surgery("merge", sources[0], elsewhere, "--out", "apart.ckpt")
    assert f"{sources[0]} and {elsewhere} differ in num_samples 400 and 300" in str(refused.value)


def test_the_script_refuses_a_mistake_in_one_line(iris_checkpoint, tmp_path, capsys):
    """The script's own process for one mistake (no traceback, exit 2); its main in-process for the others."""
    from zoo.surgery.command import main

    script = Path(__file__).parents[1] / "scripts" / "surgery.py"
    done = subprocess.run(
        [sys.executable, str(script), "prune", iris_checkpoint, "--out", str(tmp_path / "pruned.pt")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(script.parents[1])},
        timeout=120,
    )
    assert done.returncode == 2 and done.stderr.startswith("surgery: error: --out must name a .ckpt file")
    assert len(done.stderr.strip().splitlines()) == 1
    for arguments, message in [
        (["merge", iris_checkpoint, iris_checkpoint, "--out", str(tmp_path / "m.ckpt")], "these networks classify"),
        (["prune", iris_checkpoint, "--out", iris_checkpoint], "is a source checkpoint"),
        (["compress", iris_checkpoint, "--tolerance", "nan", "--out", str(tmp_path / "c.ckpt")], "must be a number"),
        (["compress", iris_checkpoint, "--k", "fc1=2000", "--out", str(tmp_path / "c.ckpt")], "must lie in 1..16"),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(arguments)
        said = capsys.readouterr()
        error = said.err
        assert exited.value.code == 2, error
        assert error.startswith("surgery: error: ") and message in error
        assert len(error.strip().splitlines()) == 1
        assert "compressed" not in said.out  # nothing announced that was not done
