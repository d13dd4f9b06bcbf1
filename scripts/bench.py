"""Benchmarks that print measured figures (speed targets live here, never in tests).

    python scripts/bench.py pipeline   # one FCNet epoch on MNIST: zoo (Lightning) vs a plain PyTorch loop

Each pipeline runs the same model, optimizer and batches of the same tensors;
runs alternate so that load on the machine hits both alike, and the best of
``--repeats`` is reported.
"""

from __future__ import annotations

import argparse
import copy
import time

import pytorch_lightning as pl
import torch

from zoo import ZooDataModule, create_model


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmark", choices=["pipeline"])
    parser.add_argument("--hidden", type=int, nargs="+", default=[1024, 512])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--log-dir", default="lightning_logs")
    args = parser.parse_args()
    {"pipeline": pipeline}[args.benchmark](args)


if __name__ == "__main__":
    main()
