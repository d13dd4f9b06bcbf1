"""What every analysis callback shares: when to run, on which samples, and checking its layers early."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch

from zoo.errors import ZooError
from zoo.report import RunReport


class AnalysisCallback(pl.Callback):
    """Runs ``analyse`` then ``report`` after every ``every_n_epochs``-th training epoch and after the last.

    Subclasses set ``name`` (the report folder and TensorBoard prefix) and implement both
    methods; this class picks the samples, checks requested layers before training starts,
    and runs only on global rank zero.
    """

    name = "analysis"

    def __init__(self, every_n_epochs: int, max_samples: int, layers: list[str] | None, split: str) -> None:
        if every_n_epochs < 1:
            raise self.error(f"every_n_epochs must be at least 1, got {every_n_epochs}")
        if max_samples < 1:
            raise self.error(f"max_samples must be at least 1, got {max_samples}")
        self.every_n_epochs, self.max_samples, self.layers, self.split = every_n_epochs, max_samples, layers, split

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if not self.layers:
            return
        with torch.no_grad():
            hidden = pl_module.hidden_activations(torch.zeros(1, *pl_module.input_shape, device=pl_module.device))
        unknown = [layer for layer in self.layers if layer not in hidden]
        if unknown:
            raise self.error(f"unknown layer {unknown[0]!r}; {type(pl_module).__name__}'s hidden layers are: {', '.join(hidden)}")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        last = epoch + 1 >= trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else False
        if not trainer.is_global_zero or trainer.sanity_checking or ((epoch + 1) % self.every_n_epochs and not last):
            return
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "split"):
            raise self.error(f"needs zoo's ZooDataModule (it reads whole splits); got {type(datamodule).__name__}")
        inputs, targets = (t[: self.max_samples] for t in datamodule.split(self.split))
        result = self.analyse(pl_module, datamodule, inputs, targets)
        self.report(result, RunReport(trainer, self.name), epoch)

    def error(self, message: str) -> ZooError:
        """A user-facing error that names the callback."""
        return ZooError(f"{type(self).__name__}: {message}")

    def analyse(self, pl_module: pl.LightningModule, datamodule: pl.LightningDataModule, inputs: torch.Tensor, targets: torch.Tensor) -> Any:
        raise NotImplementedError

    def report(self, result: Any, report: RunReport, epoch: int) -> None:
        raise NotImplementedError
