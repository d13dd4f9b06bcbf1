"""Benchmarks that print measured figures (speed targets live here, never in tests).

    python scripts/bench.py pipeline   # one FCNet epoch on MNIST: zoo (Lightning) vs a plain PyTorch loop
    python scripts/bench.py sparse     # SparseLinear backends vs nn.Linear, 1000×1000, several densities
    python scripts/bench.py sparse-epoch     # one MNIST epoch: configs/set.yaml's SparseNet (CSR) vs the same FCNet
    python scripts/bench.py task-separation  # the analysis on 10,000 MNIST test images vs the per-sample loop
    python scripts/bench.py activations      # the activation analysis on 10,000 MNIST test images
    python scripts/bench.py report           # all of it in one run → docs/benchmarks.md and .json

``pipeline`` runs the same model, optimizer and batches of the same tensors in
both loops; runs alternate so that load on the machine hits both alike, and
the best of ``--repeats`` is reported; ``sparse-epoch`` does the same for the
SparseNet of ``configs/set.yaml`` and the FCNet of the same widths and dropout,
in both loops, and times a SET step on it. ``sparse`` times forward + backward of
one batch with torch.utils.benchmark (median, CUDA synchronised), on the CPU
and on a GPU when there is one. ``pipeline`` and ``report`` train on ``--device``
(a GPU when there is one), every pipeline synchronised before its clock stops.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
import yaml
from PIL import Image
from torch.utils import benchmark

from zoo import ZooDataModule, ZooModule, create_model
from zoo.analysis import ImagePrior, activation_analysis, task_separation
from zoo.analysis.reference import attribution_loop, task_gradients_loop
from zoo.data.idx import read_idx
from zoo.io import write_json
from zoo.models.sparse import SparseLinear, torch_sparse_available


class EpochTimer(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        _synchronize(pl_module.device)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        _synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def zoo_epoch(model: ZooModule, data: ZooDataModule, device: torch.device, log_dir: str) -> float:
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=pl.loggers.TensorBoardLogger(log_dir, name="bench"),
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=data)
    return timer.seconds


class PerSampleMNIST(torch.utils.data.Dataset):
    """The classic pipeline, step for step as torchvision's ``MNIST`` with ``ToTensor()`` and ``Normalize``.

    Each ``__getitem__`` turns one uint8 image into a PIL image, converts it to a float tensor
    in [0, 1] and normalizes it, with the same tensor operations and checks as torchvision's
    ``to_tensor`` (PIL path) and ``normalize``; the DataLoader then collates the samples.
    (torchvision itself cannot be imported next to the CPU build of torch used here.)
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: float, std: float) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, (mean,), (std,)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.images[index], int(self.labels[index])
        image = Image.fromarray(image.numpy(), mode="L")
        return self._normalize(self._to_tensor(image)), label

    @staticmethod
    def _to_tensor(picture: Image.Image) -> torch.Tensor:
        pixels = torch.from_numpy(np.array(picture, np.uint8, copy=True))
        pixels = pixels.view(picture.size[1], picture.size[0], len(picture.getbands()))
        return pixels.permute((2, 0, 1)).contiguous().to(dtype=torch.get_default_dtype()).div(255)

    def _normalize(self, tensor: torch.Tensor) -> torch.Tensor:
        if not tensor.is_floating_point() or tensor.ndim < 3:
            raise TypeError(f"expected a float (C, H, W) image, got {tensor.dtype} {tuple(tensor.shape)}")
        tensor = tensor.clone()
        mean = torch.as_tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.as_tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        if (std == 0).any():
            raise ValueError("std is zero")
        return tensor.sub_(mean.view(-1, 1, 1)).div_(std.view(-1, 1, 1))


def per_sample_epoch(model: ZooModule, dataset: PerSampleMNIST, batch_size: int, device: torch.device) -> float:
    """The classic loop: shuffled DataLoader (pinned memory on a GPU), batches copied to the device."""
    model.to(device).train()
    optimizer = model.configure_optimizers()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, pin_memory=device.type == "cuda")
    _synchronize(device)
    start = time.perf_counter()
    for inputs, targets in loader:
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)
    return time.perf_counter() - start


def plain_epoch(model: ZooModule, data: ZooDataModule, device: torch.device) -> float:
    """The reference: the loop one would write by hand over the same tensors, on the same device."""
    model.to(device).train()
    optimizer = model.configure_optimizers()
    inputs, targets = (tensor.to(device) for tensor in data.split("train"))
    _synchronize(device)
    start = time.perf_counter()
    for batch in torch.randperm(len(inputs), device=device).split(data.hparams.batch_size):
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _synchronize(device)
    return time.perf_counter() - start


def pipeline(args: argparse.Namespace) -> None:
    data = ZooDataModule("mnist", batch_size=args.batch_size)
    data.setup("fit")
    samples = len(data.split("train")[0])
    template = create_model("FCNet", hidden=args.hidden)
    plain_epoch(copy.deepcopy(template), data, args.device)  # warm-up: allocator, kernels
    zoo_times, plain_times = [], []
    for _ in range(args.repeats):
        plain_times.append(plain_epoch(copy.deepcopy(template), data, args.device))
        zoo_times.append(zoo_epoch(copy.deepcopy(template), data, args.device, args.log_dir))
    zoo_best, plain_best = min(zoo_times), min(plain_times)
    print(
        f"FCNet hidden={args.hidden}, batch {args.batch_size}, {samples} samples/epoch, {_device_name(args.device)}, "
        f"best of {args.repeats}"
    )
    print(f"{'pipeline':<34}{'s/epoch':>9}{'samples/s':>12}")
    print(f"{'zoo (Lightning + TensorLoader)':<34}{zoo_best:>9.2f}{samples / zoo_best:>12,.0f}")
    print(f"{'plain PyTorch loop':<34}{plain_best:>9.2f}{samples / plain_best:>12,.0f}")
    print(f"ratio zoo / plain samples/s: {plain_best / zoo_best:.3f}")


def sparse(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    backends = ["masked", "sparse"] + (["torch_sparse"] if torch_sparse_available() else [])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    size, batch = args.features, args.batch_size
    print(
        f"forward + backward of one {batch}×{size} batch through a {size}×{size} layer, ms (median); "
        f"{torch.get_num_threads()} CPU threads" + ("" if torch_sparse_available() else "; torch_sparse not installed")
    )
    for device in devices:
        x = torch.randn(batch, size, device=device, requires_grad=True)
        dense_ms = _forward_backward_ms(torch.nn.Linear(size, size).to(device), x)
        print(
            f"\n{device} ({torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}): nn.Linear {dense_ms:.3f} ms"
        )
        print(f"{'density':>8}" + "".join(f"{name:>14}" for name in backends) + "   fastest vs nn.Linear")
        for density in args.densities:
            times = [
                _forward_backward_ms(SparseLinear(size, size, density, backend).to(device), x) for backend in backends
            ]
            best = min(range(len(times)), key=times.__getitem__)
            print(
                f"{density:>8.0%}"
                + "".join(f"{t:>14.3f}" for t in times)
                + f"   {backends[best]} {dense_ms / times[best]:.2f}×"
            )


def set_shaped_models(config: str = "set.yaml") -> tuple[ZooModule, ZooModule]:
    """The SparseNet of ``configs/<config>`` and the dense FCNet of the same widths, activation and dropout."""
    spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / config).read_text())["model"]
    arguments = spec["init_args"]
    sparse_net = create_model(spec["class_path"].rsplit(".", 1)[-1], **arguments)
    dense_net = create_model(
        "FCNet",
        hidden=arguments["hidden"],
        activation=arguments.get("activation", "relu"),
        dropout=arguments.get("dropout", 0.0),
    )
    return sparse_net, dense_net


def connections(model: ZooModule) -> int:
    """Weights that connect units (no biases): the sparse layers' connections and every dense weight."""
    total = 0
    for module in model.modules():
        if isinstance(module, SparseLinear):
            total += module.connections
        elif isinstance(module, torch.nn.Linear):
            total += module.weight.numel()
    return total


def sparse_epoch(args: argparse.Namespace) -> None:
    """One MNIST training epoch of configs/set.yaml's SparseNet against the same-shape FCNet, and a SET step."""
    from zoo.callbacks.set import carry_optimizer_state
    from zoo.models.set import set_step, step_generator

    data = ZooDataModule("mnist", batch_size=args.batch_size)
    data.setup("fit")
    samples = len(data.split("train")[0])
    sparse_net, dense_net = set_shaped_models()
    templates = {"sparse": sparse_net, "dense": dense_net}
    for template in templates.values():
        plain_epoch(copy.deepcopy(template), data, args.device)  # warm-up
    runs = {(name, loop): [] for name in templates for loop in ("zoo", "plain")}
    for _ in range(args.repeats):  # alternating, so load on the machine hits both models alike
        for name, template in templates.items():
            runs[name, "zoo"].append(zoo_epoch(copy.deepcopy(template), data, args.device, args.log_dir))
            runs[name, "plain"].append(plain_epoch(copy.deepcopy(template), data, args.device))
    best = {key: min(values) for key, values in runs.items()}
    dense_connections = connections(dense_net)
    print(
        f"one MNIST training epoch ({samples:,} samples, batch {args.batch_size}, Adam), {_device_name(args.device)}, "
        f"best of {args.repeats} alternating runs"
    )
    print(f"{'model':<48}{'connections':>20}{'zoo s/epoch':>13}{'plain s/epoch':>15}")
    names = {
        "sparse": f"SparseNet {sparse_net.hparams.hidden} ε={sparse_net.hparams.epsilon}, {sparse_net.hparams.backend}",
        "dense": f"FCNet {dense_net.hparams.hidden}",
    }
    for name, template in templates.items():
        count = connections(template)
        print(
            f"{names[name]:<48}{f'{count:,} ({count / dense_connections:.2%})':>20}"
            f"{best[name, 'zoo']:>13.2f}{best[name, 'plain']:>15.2f}"
        )
    print(
        f"sparse speed-up over dense: zoo (Lightning) {best['dense', 'zoo'] / best['sparse', 'zoo']:.2f}×, "
        f"plain loop {best['dense', 'plain'] / best['sparse', 'plain']:.2f}×"
    )
    model = copy.deepcopy(sparse_net).to(args.device)
    plain_epoch(model, data, args.device)  # trained weights and an optimizer state to move
    optimizer = torch.optim.Adam(model.parameters())
    model(data.split("train")[0][:128].to(args.device)).sum().backward()
    optimizer.step()
    times = []
    for epoch in range(1, args.repeats + 2):
        _synchronize(args.device)
        start = time.perf_counter()
        for index, layer in enumerate(model.sparse_layers, start=1):
            step = set_step(layer, 0.3, step_generator(layer.seed, index, epoch))
            carry_optimizer_state(optimizer, layer.connection_parameter, step.move)
        _synchronize(args.device)
        times.append(time.perf_counter() - start)
    print(
        f"one SET step (ζ = 0.3, all {len(model.sparse_layers)} sparse layers, optimizer state moved): "
        f"{min(times):.3f} s, {min(times) / best['sparse', 'zoo']:.1%} of a sparse epoch"
    )


def _forward_backward_ms(layer: torch.nn.Module, x: torch.Tensor) -> float:
    timer = benchmark.Timer(
        stmt="layer(x).sum().backward()",
        globals={"layer": layer, "x": x},
        num_threads=torch.get_num_threads(),
    )
    return timer.blocked_autorange(min_run_time=1.0).median * 1e3


def task_separation_speed(args: argparse.Namespace) -> None:
    """The full analysis on the test set vs the per-sample loop on a subset, scaled to the same size."""
    data = ZooDataModule("mnist")
    inputs, targets = data.split("test")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    model = create_model("FCNet", hidden=args.hidden)
    print(
        f"task separation, FCNet hidden={args.hidden}, {len(inputs)} MNIST test images, {torch.get_num_threads()} "
        "CPU threads"
    )
    for device in devices:
        model.to(device)
        task_separation(model, inputs[:256], targets[:256])  # warm-up
        _synchronize(device)
        start = time.perf_counter()
        task_separation(model, inputs, targets)
        _synchronize(device)
        print(f"  vectorized on {device}: {time.perf_counter() - start:.2f} s")
    model.to("cpu")
    subset = args.reference_samples
    start = time.perf_counter()
    task_gradients_loop(model, inputs[:subset], targets[:subset])
    attribution_loop(model, inputs[:subset])
    reference = (time.perf_counter() - start) * len(inputs) / subset
    print(
        f"  per-sample loop on cpu: {reference:.1f} s (measured on {subset} images, scaled ×{len(inputs) / subset:.0f})"
    )


def activations_speed(args: argparse.Namespace) -> None:
    """The activation analysis on the test set; activation maximization timed on its own."""
    data = ZooDataModule("mnist")
    inputs, targets = data.split("test")
    low, high = data.input_range
    start = time.perf_counter()
    prior = ImagePrior.fit((data.split("train")[0] - low) / (high - low))
    prior_seconds = time.perf_counter() - start
    model = create_model("FCNet", hidden=args.hidden)
    print(
        f"activation analysis, FCNet hidden={args.hidden}, {len(inputs)} MNIST test images, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(
        f"  image prior fitted on {len(data.split('train')[0])} training images: {prior_seconds:.2f} s (once per run)"
    )
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model.to(device)
        activation_analysis(model, inputs[:256], targets[:256])  # warm-up
        for maximize in (0, 8):
            _synchronize(device)
            start = time.perf_counter()
            activation_analysis(
                model, inputs, targets, list(data.output_names), maximize=maximize, prior=prior, input_range=(low, high)
            )
            _synchronize(device)
            what = (
                "without activation maximization"
                if not maximize
                else f"with activation maximization ({maximize} units a layer + 10 classes)"
            )
            print(f"  {device}, {what}: {time.perf_counter() - start:.2f} s")


def report(args: argparse.Namespace) -> None:
    """Every benchmark in one run, on the shipped configs' models; JSON and docs/benchmarks.md."""
    data = ZooDataModule("mnist", batch_size=args.batch_size)
    train_inputs, _ = data.split("train")
    test_inputs, test_targets = data.split("test")
    classic = per_sample_mnist(data, "train", len(train_inputs))
    device = args.device
    results: dict = {
        "machine": _device_name(device),
        "device": device.type,
        "torch": torch.__version__,
        "batch_size": args.batch_size,
        "samples_per_epoch": len(train_inputs),
        "repeats": args.repeats,
        "architectures": {},
    }
    models = {}
    for config in ("fc", "columnet", "sparsenet"):
        spec = yaml.safe_load((Path(__file__).resolve().parents[1] / "configs" / f"{config}.yaml").read_text())["model"]
        models[f"configs/{config}.yaml"] = create_model(spec["class_path"].rsplit(".", 1)[-1], **spec["init_args"])
    models["FCNet 128 (data-bound)"] = create_model("FCNet", hidden=[128])
    for config, template in models.items():
        plain_epoch(copy.deepcopy(template), data, device)  # warm-up
        runs = {"zoo": [], "plain": [], "per_sample": []}
        for _ in range(args.repeats):  # alternating, so load on the machine hits every pipeline alike
            runs["zoo"].append(zoo_epoch(copy.deepcopy(template), data, device, args.log_dir))
            runs["plain"].append(plain_epoch(copy.deepcopy(template), data, device))
            runs["per_sample"].append(per_sample_epoch(copy.deepcopy(template), classic, args.batch_size, device))
        seconds = {name: min(values) for name, values in runs.items()}
        model = template.to(device).eval()
        inputs, targets = test_inputs.to(device), test_targets.to(device)
        _synchronize(device)
        start = time.perf_counter()
        with torch.no_grad():
            correct = sum(int((model(x).argmax(1) == y).sum()) for x, y in zip(inputs.split(1000), targets.split(1000)))
        evaluation = time.perf_counter() - start
        results["architectures"][config] = {
            "model": type(template).__name__,
            "nonzero_parameters": template.parameter_counts()["nonzero"],
            "seconds_per_epoch": seconds,
            "samples_per_second": {name: len(train_inputs) / value for name, value in seconds.items()},
            "zoo_vs_plain": seconds["plain"] / seconds["zoo"],
            "zoo_vs_per_sample": seconds["per_sample"] / seconds["zoo"],
            "evaluation_seconds_10k": evaluation,
            "untrained_test_accuracy": correct / len(test_inputs),
        }
        row = results["architectures"][config]
        print(
            f"{config}: zoo {seconds['zoo']:.2f} s/epoch, plain {seconds['plain']:.2f}, per-sample "
            f"{seconds['per_sample']:.2f}; "
            f"zoo/plain {row['zoo_vs_plain']:.2f}x, zoo/per-sample {row['zoo_vs_per_sample']:.2f}x; eval "
            f"{evaluation:.2f} s",
            flush=True,
        )
    fc = create_model("FCNet", hidden=[1024, 512])
    low, high = data.input_range
    start = time.perf_counter()
    task_separation(fc, test_inputs, test_targets)
    results["task_separation_seconds_10k"] = time.perf_counter() - start
    start = time.perf_counter()
    activation_analysis(fc, test_inputs, test_targets, list(data.output_names), maximize=0)
    results["activations_seconds_10k"] = time.perf_counter() - start
    results["sparse_ms"] = {
        backend: {
            f"{density:.0%}": _forward_backward_ms(
                SparseLinear(1000, 1000, density, backend), torch.randn(args.batch_size, 1000, requires_grad=True)
            )
            for density in args.densities
        }
        for backend in ["masked", "sparse"] + (["torch_sparse"] if torch_sparse_available() else [])
    }
    results["sparse_ms"]["nn.Linear"] = _forward_backward_ms(
        torch.nn.Linear(1000, 1000), torch.randn(args.batch_size, 1000, requires_grad=True)
    )
    docs = Path(__file__).resolve().parents[1] / "docs"
    write_json(docs / "benchmarks.json", results)
    (docs / "benchmarks.md").write_text(_benchmarks_markdown(results))
    print(f"wrote {docs / 'benchmarks.md'} and benchmarks.json")


POPULATIONS = {  # what the issue asks: the shipped multimult model and epochs, and FCNet [128] on MNIST
    "multimult": {"config": "multimult.yaml", "members": 100, "flags": []},
    "mnist_fc128": {"config": "fc.yaml", "members": 20, "flags": ["--model.hidden", "[128]", "--model.dropout", "0"]},
}


def population(args: argparse.Namespace) -> None:
    """N seeds as one Population against N sequential single runs of the same config, in one run.

    Every fit runs in this process through zoo's CLI (no analyses, no progress bar), on
    ``--threads`` CPU threads. Both sides are then scored on the test split with their final
    weights, and the two distributions of the metric are compared (mean, std, two-sample
    Kolmogorov–Smirnov test).
    """
    from scipy.stats import ks_2samp

    from zoo.cli import main as zoo

    torch.set_num_threads(args.threads)
    path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("population", {})
    for name in args.populations:
        spec = POPULATIONS[name]
        members = args.members or spec["members"]
        common = ["--config", str(Path(__file__).resolve().parents[1] / "configs" / spec["config"]), *spec["flags"]]
        common += ["--trainer.callbacks", "null", "--trainer.enable_progress_bar", "false"]
        common += ["--trainer.enable_model_summary", "false", "--trainer.logger.init_args.save_dir", args.log_dir]
        if args.epochs:
            common += ["--trainer.max_epochs", str(args.epochs)]
        start = time.perf_counter()
        batched = zoo(["fit", *common, "--population", str(members), "--seed_everything", "0"])
        population_seconds = time.perf_counter() - start
        data = batched.datamodule
        population_scores = _test_scores(batched.model, data)  # every member in one batched forward
        single_scores, start = [], time.perf_counter()
        for seed in range(members):
            single = zoo(["fit", *common, "--seed_everything", str(seed)])
            single_scores += _test_scores(single.model, single.datamodule)
        single_seconds = time.perf_counter() - start
        test = ks_2samp(population_scores, single_scores)
        inputs, targets = data.split("train")
        batch = (inputs[: data.hparams.batch_size], targets[: data.hparams.batch_size])
        arithmetic = {"single": _step_ms(single.model, *batch), "population": _step_ms(batched.model, *batch)}
        results["population"][name] = {
            "config": f"configs/{spec['config']}",
            "flags": spec["flags"],
            "members": members,
            "epochs": batched.trainer.max_epochs,
            "threads": args.threads,
            "metric": "r2" if batched.model.task == "regression" else "accuracy",
            "population_seconds": population_seconds,
            "single_runs_seconds": single_seconds,
            "speedup": single_seconds / population_seconds,
            "population_scores": population_scores,
            "single_scores": single_scores,
            "ks_statistic": float(test.statistic),
            "ks_p_value": float(test.pvalue),
            "steps": batched.trainer.global_step,
            "arithmetic_ms_per_step": arithmetic,
        }
        row = results["population"][name]
        print(
            f"{name}: {members} members in {population_seconds:.1f} s, {members} single runs in {single_seconds:.1f} s "
            f"= {row['speedup']:.1f}x; test {row['metric']} {np.mean(population_scores):.4f} ± "
            f"{np.std(population_scores):.4f} vs {np.mean(single_scores):.4f} ± {np.std(single_scores):.4f} "
            f"(KS p = {test.pvalue:.2f})",
            flush=True,
        )
        write_json(path, results)  # after each population: a later one that fails or is stopped loses nothing
        (path.parent / "benchmarks.md").write_text(_benchmarks_markdown(results))
        print(f"wrote {path} and benchmarks.md", flush=True)


def _population_markdown(populations: dict) -> list[str]:
    if not populations:
        return []
    lines = [
        "",
        "## Populations: N seeds as one batched model (`python scripts/bench.py population`)",
        "",
        "Each population trains in one process as one `Population` model; the single runs are the same",
        "config fitted one after another in the same process, one per seed, through the same CLI (no analyses).",
        "Both are scored with their final weights on the test split; the KS test compares the two",
        "distributions of the metric (a large p: no evidence that they differ).",
        "",
        "| config | members | epochs | threads | population | single runs | speed-up | population metric "
        "| single-run metric | KS p |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in populations.values():
        flags = " ".join(row["flags"])
        name = f"{row['config']} {flags}".strip()
        scores = {side: np.array(row[f"{side}_scores"]) for side in ("population", "single")}
        metric = {side: f"{values.mean():.4f} ± {values.std():.4f}" for side, values in scores.items()}
        lines.append(
            f"| `{name}` | {row['members']} | {row['epochs']} | {row['threads']} | {row['population_seconds']:.0f} s "
            f"| {row['single_runs_seconds']:.0f} s | {row['speedup']:.1f}× | {row['metric']} {metric['population']} "
            f"| {metric['single']} | {row['ks_p_value']:.2f} |"
        )
    timed = {name: row for name, row in populations.items() if "arithmetic_ms_per_step" in row}
    if timed:
        lines += [
            "",
            "Where the time goes, per training step: *wall* is a fit's wall time over its training steps",
            "(validation, checkpoints and set-up included; a single run's averaged over the N runs), *arithmetic*",
            "one bare PyTorch step on one batch (forward, loss, backward, Adam; no Lightning), best of 20. The rest",
            "of a wall step is work per step or per epoch (Lightning's hooks and logging, the batch gather,",
            "metrics, validation), which a population pays once for all its members.",
            "",
            "| population | single run: wall | arithmetic | share | population: wall | arithmetic "
            "| share | arithmetic ÷ one member's |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        ceilings = [""]
        for name, row in timed.items():
            single_wall = row["single_runs_seconds"] / row["members"] / row["steps"] * 1e3
            population_wall = row["population_seconds"] / row["steps"] * 1e3
            single, population = row["arithmetic_ms_per_step"]["single"], row["arithmetic_ms_per_step"]["population"]
            lines.append(
                f"| {name}, {row['members']} members | {single_wall:.2f} ms | {single:.2f} ms "
                f"| {single / single_wall:.0%} | {population_wall:.2f} ms | {population:.2f} ms "
                f"| {population / population_wall:.0%} | {population / single:.1f}× |"
            )
            ceilings.append(
                f"- {name}: were the population's step nothing but its arithmetic, the population would be "
                f"{row['members'] * single_wall / population:.1f}× faster than the single runs (N × a single run's "
                f"wall step ÷ the population's arithmetic step); it is {row['speedup']:.1f}×."
            )
        lines += ceilings
    return lines


def _step_ms(model: ZooModule, inputs: torch.Tensor, targets: torch.Tensor, repeats: int = 20) -> float:
    """One training step's bare arithmetic (forward, loss, backward, Adam; no Lightning), ms, best of ``repeats``."""
    model = copy.deepcopy(model).train()
    inputs, targets = inputs.to(model.device), targets.to(model.device)
    optimizer = torch.optim.Adam(model.parameters())
    times = []
    for _ in range(repeats + 3):  # the first 3 warm up
        start = time.perf_counter()
        optimizer.zero_grad()
        model.loss(model(inputs), targets).backward()  # a Population's loss: the sum of its members' losses
        optimizer.step()
        _synchronize(model.device)
        times.append(time.perf_counter() - start)
    return min(times[3:]) * 1e3


def _test_scores(model: ZooModule, data: ZooDataModule) -> list[float]:
    """The final weights on the test split, a score per member (a single model is one): accuracy, or mean R²."""
    inputs, targets = data.split("test")
    with torch.no_grad():
        outputs = model.eval()(inputs.to(model.device))
    outputs, targets = (outputs if outputs.ndim == 3 else outputs[None]), targets.to(outputs.device)
    if model.task == "classification":
        return (outputs.argmax(-1) == targets).float().mean(1).tolist()
    residual = (outputs - targets).square().sum(1)  # (members, outputs)
    return (1 - residual / (targets - targets.mean(0)).square().sum(0)).mean(1).tolist()


def _benchmarks_markdown(results: dict) -> str:
    rows = results["architectures"]
    steps = -(-results["samples_per_epoch"] // results["batch_size"])
    seconds = {config: row["seconds_per_epoch"] for config, row in rows.items()}
    step_overhead_ms = [(t["zoo"] - t["plain"]) / steps * 1e3 for t in seconds.values()]
    decode_us = [(t["per_sample"] - t["plain"]) / results["samples_per_epoch"] * 1e6 for t in seconds.values()]

    def meeting(key: str, target: float) -> str:
        met = [config for config, row in rows.items() if row[key] >= target]
        missed = [f"{config} at {row[key]:.2f}×" for config, row in rows.items() if row[key] < target]
        return f"met by {', '.join(met) or 'none'}" + (f"; not by {', '.join(missed)}" if missed else "")

    lines = [
        "# Benchmarks",
        "",
        f"Produced by `python scripts/bench.py report --repeats {results['repeats']}` (one run; every figure below "
        "comes from it,",
        "and `docs/benchmarks.json` holds them all),",
        f"on {results['machine']}, torch {results['torch']}, batch {results['batch_size']}, "
        f"{results['samples_per_epoch']:,} MNIST training samples an epoch, best of {results['repeats']} alternating "
        "runs." + (" No GPU was used for these figures." if results["device"] == "cpu" else ""),
        "",
        "## Training: seconds per epoch and samples/s, three pipelines",
        "",
        "- **zoo**: Lightning `Trainer.fit` with the tensor DataModule (batches gathered by index on the device);",
        "- **plain**: a hand-written PyTorch loop over the same tensors, same model and optimizer;",
        "- **per-sample**: the classic `Dataset` + `DataLoader`, each image decoded on its own as torchvision's "
        "`MNIST` + `ToTensor` + `Normalize` do (uint8 → PIL → float tensor → normalized), then collated.",
        "",
        "| config | model | nonzero params | zoo s/epoch | plain s/epoch | per-sample s/epoch | zoo samples/s "
        "| zoo ÷ plain | zoo ÷ per-sample | plain ÷ per-sample | eval 10k (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for config, row in rows.items():
        t = row["seconds_per_epoch"]
        lines.append(
            f"| {config} | {row['model']} | {row['nonzero_parameters']:,} | {t['zoo']:.2f} | {t['plain']:.2f} | "
            f"{t['per_sample']:.2f} | "
            f"{row['samples_per_second']['zoo']:,.0f} | {row['zoo_vs_plain']:.2f}× | {row['zoo_vs_per_sample']:.2f}× | "
            f"{t['per_sample'] / t['plain']:.2f}× | {row['evaluation_seconds_10k']:.2f} |"
        )
    lines += [
        "",
        "Ratios are of samples/s (higher is better for the first named). Targets: zoo ≥ 0.9× plain and ≥ 3× "
        "per-sample.",
        "",
        f"- zoo ≥ 0.9× plain: {meeting('zoo_vs_plain', 0.9)}. What zoo adds to the plain loop is "
        "Lightning's per-step work (hooks, closure, metric update, NaN check): "
        f"{min(step_overhead_ms):.2f}–{max(step_overhead_ms):.2f} ms a step here.",
        f"- zoo ≥ 3× per-sample: {meeting('zoo_vs_per_sample', 3.0)}. Decoding one sample at a time "
        f"costs {min(decode_us):.0f}–{max(decode_us):.0f} µs a sample on top of the arithmetic. The plain ÷ "
        "per-sample column is the "
        "most a pipeline can gain over the per-sample one by batching alone (the plain loop does nothing but the "
        "arithmetic), "
        "so where it is below 3× the model's arithmetic, not its data pipeline, sets the epoch time on this machine.",
        "",
        "## Analyses (FCNet 1024-512, the 10,000 test images)",
        "",
        f"- task separation: {results['task_separation_seconds_10k']:.2f} s",
        f"- activation analysis without activation maximization: {results['activations_seconds_10k']:.2f} s",
        "",
        "## Sparse kernels (forward + backward, 1000×1000 layer, ms; see docs/sparse.md)",
        "",
        "| density | " + " | ".join(name for name in results["sparse_ms"] if name != "nn.Linear") + " | nn.Linear |",
        "| ---: |" + " ---: |" * len(results["sparse_ms"]),
    ]
    densities = next(iter(results["sparse_ms"].values()))
    for density in densities:
        cells = [f"{results['sparse_ms'][name][density]:.2f}" for name in results["sparse_ms"] if name != "nn.Linear"]
        lines.append(f"| {density} | " + " | ".join(cells) + f" | {results['sparse_ms']['nn.Linear']:.2f} |")
    lines += _population_markdown(results.get("population", {}))
    return "\n".join(lines) + "\n"


def per_sample_mnist(data: ZooDataModule, split: Literal["train", "test"], samples: int) -> PerSampleMNIST:
    """The first ``samples`` images of an MNIST file, for the classic pipeline, normalized as ``data`` is."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(data.data_dir / "mnist" / f"{prefix}-images-idx3-ubyte.gz")[:samples]
    labels = read_idx(data.data_dir / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")[:samples]
    return PerSampleMNIST(images, labels, float(data.mean), float(data.std))


def _device_name(device: torch.device) -> str:
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
    return f"{torch.cuda.get_device_name(device)} ({cpu})" if device.type == "cuda" else cpu


def _device(name: str) -> torch.device:
    """``--device``: a device this machine has, or one clear message (argparse prints it and exits 2)."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{name!r} is not a device; accepted: cpu, cuda, cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{name!r}: accepted devices are cpu, cuda, cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{name!r}: this machine has no CUDA GPU; use cpu")
    return device


def _synchronize(device: str | torch.device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "benchmark",
        choices=["pipeline", "sparse", "sparse-epoch", "task-separation", "activations", "population", "report"],
    )
    parser.add_argument("--hidden", type=int, nargs="+", default=[1024, 512], help="pipeline: FCNet widths")
    parser.add_argument("--features", type=int, default=1000, help="sparse: layer size")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.5], help="sparse: densities")
    parser.add_argument(
        "--reference-samples", type=int, default=200, help="task-separation: images the slow loop runs on"
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-dir", default="lightning_logs")
    parser.add_argument(
        "--device",
        type=_device,
        default=torch.device("cuda" if torch.cuda.is_available() else "cpu"),
        help="pipeline, sparse-epoch, report: where the training pipelines run",
    )
    parser.add_argument("--populations", nargs="+", default=list(POPULATIONS), choices=list(POPULATIONS))
    parser.add_argument("--members", type=int, default=None, help="population: members (default: 100 and 20)")
    parser.add_argument("--epochs", type=int, default=None, help="population: epochs (default: the config's)")
    parser.add_argument("--threads", type=int, default=1, help="population: CPU threads for every fit")
    args = parser.parse_args()
    {
        "pipeline": pipeline,
        "sparse": sparse,
        "sparse-epoch": sparse_epoch,
        "task-separation": task_separation_speed,
        "activations": activations_speed,
        "report": report,
        "population": population,
    }[args.benchmark](args)


if __name__ == "__main__":
    from zoo.errors import exit_on_failure

    exit_on_failure(main, program="bench")
