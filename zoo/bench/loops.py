"""The three training loops the benchmarks compare, each timing one epoch of the model it is given.

- :func:`zoo_epoch`: the Trainer ``python -m zoo fit`` builds (its callbacks, checkpoints and
  logger) with zoo's tensor DataModule (batches gathered by index on the device);
- :func:`plain_epoch`: the loop one would write by hand over the same tensors;
- :func:`bare_lightning_epoch`: Lightning with nothing of zoo's (the loss alone, no logger, no
  metrics), the floor Lightning's own per-step work sets;
- :func:`per_sample_epoch`: the classic ``Dataset`` + ``DataLoader``, each image decoded on its
  own as torchvision's ``MNIST`` + ``ToTensor`` + ``Normalize`` do.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Callable
from typing import Literal

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image

from zoo import ZooDataModule, ZooModule
from zoo.bench.timing import synchronize
from zoo.data.idx import read_idx


class EpochTimer(pl.Callback):
    """The seconds of the training epoch alone (no set-up, no teardown), device-synchronised."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device)
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        synchronize(pl_module.device)
        self.seconds = time.perf_counter() - self.start


def zoo_epoch(model: ZooModule, data: ZooDataModule, *, device: torch.device, log_dir: str) -> float:
    """One training epoch of ``model`` by the Trainer ``python -m zoo fit`` builds, seconds.

    Everything a run's step pays for is there (its record, summary and checkpoint callbacks, its logger,
    zoo's hook dispatch); validation, the progress bar and the analyses are not.
    """
    from zoo.cli import main as zoo

    arguments = ["--model", "FCNet", "--seed_everything", "0", "--trainer.max_epochs", "1"]  # the model: ``model``
    arguments += ["--trainer.callbacks", "[{class_path: zoo.bench.loops.EpochTimer}]"]
    arguments += ["--trainer.limit_val_batches", "0"]
    arguments += ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    arguments += ["--trainer.accelerator", device.type, "--trainer.devices", "1"]
    arguments += ["--trainer.logger.init_args.save_dir", log_dir]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*could not find the monitored key")  # no validation to monitor
        trainer = zoo(arguments, run=False).trainer
        trainer.fit(model, datamodule=data)
    return next(callback.seconds for callback in trainer.callbacks if isinstance(callback, EpochTimer))


class BareLightning(pl.LightningModule):
    """The model's forward, cross-entropy and its optimizer, nothing else: no metrics, logging or NaN check."""

    def __init__(self, model: ZooModule) -> None:
        super().__init__()
        self.model = model

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        inputs, targets = batch
        return torch.nn.functional.cross_entropy(self.model(inputs), targets)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.model.configure_optimizers()


def bare_lightning_epoch(model: ZooModule, data: ZooDataModule, *, device: torch.device) -> float:
    """One training epoch of ``Trainer.fit`` on :class:`BareLightning`, seconds: no logger, validation,
    checkpoints or progress bar."""
    timer = EpochTimer()
    trainer = pl.Trainer(
        accelerator=device.type,
        devices=1,
        max_epochs=1,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=False,
        callbacks=[timer],
    )
    trainer.fit(BareLightning(model), datamodule=data)
    return timer.seconds


def plain_epoch(model: ZooModule, data: ZooDataModule, *, device: torch.device) -> float:
    """The reference: the loop one would write by hand over the same tensors, on the same device."""
    model.to(device).train()
    optimizer = model.configure_optimizers()
    inputs, targets = (tensor.to(device) for tensor in data.split("train"))
    synchronize(device)
    start = time.perf_counter()
    for batch in torch.randperm(len(inputs), device=device).split(data.hparams.batch_size):
        loss = torch.nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


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


def per_sample_mnist(data: ZooDataModule, split: Literal["train", "test"], samples: int) -> PerSampleMNIST:
    """The first ``samples`` images of an MNIST file, for the classic pipeline, normalized as ``data`` is."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(data.data_dir / "mnist" / f"{prefix}-images-idx3-ubyte.gz")[:samples]
    labels = read_idx(data.data_dir / "mnist" / f"{prefix}-labels-idx1-ubyte.gz")[:samples]
    return PerSampleMNIST(images, labels, float(data.mean), float(data.std))


def per_sample_epoch(model: ZooModule, dataset: PerSampleMNIST, *, batch_size: int, device: torch.device) -> float:
    """The classic loop: shuffled DataLoader (pinned memory on a GPU), batches copied to the device."""
    model.to(device).train()
    optimizer = model.configure_optimizers()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=True, pin_memory=device.type == "cuda")
    synchronize(device)
    start = time.perf_counter()
    for inputs, targets in loader:
        inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
        loss = torch.nn.functional.cross_entropy(model(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    synchronize(device)
    return time.perf_counter() - start


def epoch_runs(
    template: ZooModule,
    data: ZooDataModule,
    *,
    device: torch.device,
    log_dir: str,
    classic: PerSampleMNIST | None = None,
    bare: bool = False,
) -> dict[str, Callable[[], float]]:
    """One epoch of a fresh copy of ``template`` in each loop (per-sample too if ``classic`` is given,
    bare Lightning too if ``bare``).

    For :func:`~zoo.bench.timing.best_of_alternating`; one plain epoch runs first, as a warm-up
    (allocator, kernels), so that the first loop timed does not pay for it.
    """
    plain_epoch(copy.deepcopy(template), data, device=device)
    runs = {
        "zoo": lambda: zoo_epoch(copy.deepcopy(template), data, device=device, log_dir=log_dir),
        "plain": lambda: plain_epoch(copy.deepcopy(template), data, device=device),
    }
    if bare:
        runs["bare_lightning"] = lambda: bare_lightning_epoch(copy.deepcopy(template), data, device=device)
    if classic is not None:
        batch_size = data.hparams.batch_size
        runs["per_sample"] = lambda: per_sample_epoch(
            copy.deepcopy(template), classic, batch_size=batch_size, device=device
        )
    return runs
