"""Benchmarks that print measured figures (speed targets live here, never in tests).

    python scripts/bench.py pipeline   # one FCNet epoch on MNIST: zoo (Lightning) vs a plain PyTorch loop
    python scripts/bench.py sparse     # SparseLinear backends vs nn.Linear, 1000×1000, several densities
    python scripts/bench.py task-separation  # the analysis on 10,000 MNIST test images vs the per-sample loop
    python scripts/bench.py activations      # the activation analysis on 10,000 MNIST test images

``pipeline`` runs the same model, optimizer and batches of the same tensors in
both loops; runs alternate so that load on the machine hits both alike, and
the best of ``--repeats`` is reported. ``sparse`` times forward + backward of
one batch with torch.utils.benchmark (median, CUDA synchronised), on the CPU
and on a GPU when there is one.
"""

from __future__ import annotations

import argparse
import copy
import time

import warnings

import pytorch_lightning as pl
import torch
from torch.utils import benchmark

from zoo import ZooDataModule, create_model
from zoo.analysis import ImagePrior, activation_analysis, task_separation
from zoo.analysis.reference import attribution_loop, task_gradients_loop
from zoo.models.sparse import SparseLinear, torch_sparse_available


class EpochTimer(pl.Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def zoo_epoch(model: pl.LightningModule, data: ZooDataModule, log_dir: str) -> float:
    timer = EpochTimer()
    trainer = pl.Trainer(
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


def plain_epoch(model: torch.nn.Module, data: ZooDataModule) -> float:
    """The reference: the loop one would write by hand over the same device tensors."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = data.split("train")
    model.train()
    start = time.perf_counter()
    for batch in torch.randperm(len(inputs), device=inputs.device).split(data.hparams.batch_size):
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def pipeline(args: argparse.Namespace) -> None:
    data = ZooDataModule("mnist", batch_size=args.batch_size)
    data.setup("fit")
    samples = len(data.split("train")[0])
    template = create_model("FCNet", hidden=args.hidden)
    plain_epoch(copy.deepcopy(template), data)  # warm-up: allocator, kernels
    zoo_times, plain_times = [], []
    for _ in range(args.repeats):
        plain_times.append(plain_epoch(copy.deepcopy(template), data))
        zoo_times.append(zoo_epoch(copy.deepcopy(template), data, args.log_dir))
    zoo_best, plain_best = min(zoo_times), min(plain_times)
    print(f"FCNet hidden={args.hidden}, batch {args.batch_size}, {samples} samples/epoch, {torch.get_num_threads()} threads, best of {args.repeats}")
    print(f"{'pipeline':<34}{'s/epoch':>9}{'samples/s':>12}")
    print(f"{'zoo (Lightning + TensorLoader)':<34}{zoo_best:>9.2f}{samples / zoo_best:>12,.0f}")
    print(f"{'plain PyTorch loop':<34}{plain_best:>9.2f}{samples / plain_best:>12,.0f}")
    print(f"ratio zoo / plain samples/s: {plain_best / zoo_best:.3f}")


def sparse(args: argparse.Namespace) -> None:
    warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
    backends = ["masked", "sparse"] + (["torch_sparse"] if torch_sparse_available() else [])
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    size, batch = args.features, args.batch_size
    print(f"forward + backward of one {batch}×{size} batch through a {size}×{size} layer, ms (median); "
          f"{torch.get_num_threads()} CPU threads" + ("" if torch_sparse_available() else "; torch_sparse not installed"))
    for device in devices:
        x = torch.randn(batch, size, device=device, requires_grad=True)
        dense_ms = _forward_backward_ms(torch.nn.Linear(size, size).to(device), x)
        print(f"\n{device} ({torch.cuda.get_device_name() if device == 'cuda' else 'CPU'}): nn.Linear {dense_ms:.3f} ms")
        print(f"{'density':>8}" + "".join(f"{name:>14}" for name in backends) + "   fastest vs nn.Linear")
        for density in args.densities:
            times = [_forward_backward_ms(SparseLinear(size, size, density, backend).to(device), x) for backend in backends]
            best = min(range(len(times)), key=times.__getitem__)
            print(f"{density:>8.0%}" + "".join(f"{t:>14.3f}" for t in times) + f"   {backends[best]} {dense_ms / times[best]:.2f}×")


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
    print(f"task separation, FCNet hidden={args.hidden}, {len(inputs)} MNIST test images, {torch.get_num_threads()} CPU threads")
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
    print(f"  per-sample loop on cpu: {reference:.1f} s (measured on {subset} images, scaled ×{len(inputs) / subset:.0f})")


def activations_speed(args: argparse.Namespace) -> None:
    """The activation analysis on the test set; activation maximization timed on its own."""
    data = ZooDataModule("mnist")
    inputs, targets = data.split("test")
    low, high = data.input_range
    start = time.perf_counter()
    prior = ImagePrior.fit((data.split("train")[0] - low) / (high - low))
    prior_seconds = time.perf_counter() - start
    model = create_model("FCNet", hidden=args.hidden)
    print(f"activation analysis, FCNet hidden={args.hidden}, {len(inputs)} MNIST test images, {torch.get_num_threads()} CPU threads")
    print(f"  image prior fitted on {len(data.split('train')[0])} training images: {prior_seconds:.2f} s (once per run)")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model.to(device)
        activation_analysis(model, inputs[:256], targets[:256])  # warm-up
        for maximize in (0, 8):
            _synchronize(device)
            start = time.perf_counter()
            activation_analysis(model, inputs, targets, list(data.output_names), maximize=maximize, prior=prior, input_range=(low, high))
            _synchronize(device)
            what = "without activation maximization" if not maximize else f"with activation maximization ({maximize} units a layer + 10 classes)"
            print(f"  {device}, {what}: {time.perf_counter() - start:.2f} s")


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["pipeline", "sparse", "task-separation", "activations"])
    parser.add_argument("--hidden", type=int, nargs="+", default=[1024, 512], help="pipeline: FCNet widths")
    parser.add_argument("--features", type=int, default=1000, help="sparse: layer size")
    parser.add_argument("--densities", type=float, nargs="+", default=[0.01, 0.05, 0.1, 0.5], help="sparse: densities")
    parser.add_argument("--reference-samples", type=int, default=200, help="task-separation: images the slow loop runs on")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-dir", default="lightning_logs")
    args = parser.parse_args()
    {"pipeline": pipeline, "sparse": sparse, "task-separation": task_separation_speed, "activations": activations_speed}[args.benchmark](args)


if __name__ == "__main__":
    main()
