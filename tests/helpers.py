"""Callbacks that tests name by class path in configs (so they live in a module, not a test file)."""

from pathlib import Path

import pytorch_lightning as pl
import torch

from zoo.callbacks.schedule import AnalysisCallback


class SeenSamples(pl.Callback):
    """Saves the inputs this rank trained on, to ``<folder>/seen_rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder, self.seen = Path(folder), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(batch[0].detach().cpu())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.save(torch.cat(self.seen), self.folder / f"seen_rank{trainer.global_rank}.pt")


class FailingAnalysis(AnalysisCallback):
    """An analysis that always fails, to show that a run survives it."""

    name = "failing"

    def __init__(self, every_n_epochs: int = 1) -> None:
        super().__init__(every_n_epochs, max_samples=10, layers=None, split="train")

    def analyse(self, pl_module, datamodule, inputs, targets):
        raise RuntimeError("the analysis broke")


class StopAfter(pl.Callback):
    """Stops the run after epoch ``epoch``, its checkpoint written: a run killed there, for resume tests."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True
