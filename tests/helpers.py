"""Callbacks that tests name by class path in configs (so they live in a module, not a test file)."""

import time
from pathlib import Path

import pytorch_lightning as pl
import torch

from zoo.analyses import Analysis
from zoo.callbacks.schedule import AnalysisCallback
from zoo.models import Probe, Record, ZooModule


class SeenSamples(pl.Callback):
    """Saves the inputs this rank trained on, to ``<folder>/seen_rank<r>.pt``."""

    def __init__(self, folder: str) -> None:
        self.folder, self.seen = Path(folder), []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append(batch[0].detach().cpu())

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        torch.save(torch.cat(self.seen), self.folder / f"seen_rank{trainer.global_rank}.pt")


def _break(model, samples, options, *, layers, cache):
    raise RuntimeError("the analysis broke")


FAILING = Analysis(name="failing", title="failing", run=_break)


class FailingAnalysis(AnalysisCallback):
    """An analysis that always fails, to show that training survives it and the run says so."""

    def __init__(self, every_n_epochs: int = 1) -> None:
        super().__init__(FAILING, every_n_epochs=every_n_epochs, max_samples=10, split="train")


class NoParameters(ZooModule):
    """A model with nothing to learn: the CLI must say so instead of letting the optimizer fail."""

    def __init__(self, input_shape: tuple[int, ...] = (4,), num_outputs: int = 3, task: str = "classification") -> None:
        super().__init__(input_shape, num_outputs, task)
        self.probe = Probe("fc1", 4)

    def forward(self, x: torch.Tensor, record: Record | None = None) -> torch.Tensor:
        return self.probe(x.flatten(1), record)[:, : self.num_outputs]


class InterruptAt(pl.Callback):
    """Raises KeyboardInterrupt at a training step, as Python does when Ctrl-C arrives (SIGINT)."""

    def __init__(self, step: int = 3) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            raise KeyboardInterrupt


class CorruptMember(pl.Callback):
    """Makes one member of a population diverge at the start of training."""

    def __init__(self, member: int = 1) -> None:
        self.member = member

    def on_train_start(self, trainer, pl_module) -> None:
        with torch.no_grad():
            pl_module.stacked_parameters["head/weight"][self.member] = float("inf")


class StopAfter(pl.Callback):
    """Stops the run after epoch ``epoch``, its checkpoint written: a run killed there, for resume tests."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


class WaitAtStart(pl.Callback):
    """Holds a fit at its start until ``gate`` exists, first writing ``gate.waiting``: a run caught mid-way."""

    def __init__(self, gate: str) -> None:
        self.gate = Path(gate)

    def on_train_start(self, trainer, pl_module) -> None:
        self.gate.with_suffix(".waiting").touch()
        while not self.gate.exists():
            time.sleep(0.05)
