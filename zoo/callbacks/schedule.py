"""What every analysis callback shares: when to run, on which samples, and checking its layers early."""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from zoo.errors import ZooError, ZooFailure
from zoo.models.contract import select_probes
from zoo.models.population import Population
from zoo.writer import AnalysisWriter

BEFORE_TRAINING = -1  # the epoch number of the initialized network, analysed before the first step


def epoch_label(epoch: int) -> str:
    """How an analysed epoch appears in file names: ``007``, or ``init`` before training."""
    return "init" if epoch == BEFORE_TRAINING else f"{epoch:03d}"


class AnalysisCallback(pl.Callback):
    """Runs ``analyse`` then ``write`` after every ``every_n_epochs``-th training epoch and after the last.

    ``every_n_epochs=None`` runs only after the last epoch. "The last" is whatever ended
    training: ``max_epochs``, ``max_steps``, a time limit or early stopping. With
    ``before_training``, the initialized network is analysed too, as epoch -1 (files
    ``*_init.*``), unless the run resumes. Subclasses set ``name`` (the output folder and
    TensorBoard prefix) and implement both methods; this class picks the samples (the first
    ``max_samples`` of ``split``), checks requested layers before training starts, says on
    the console what it does, and runs only on global rank zero.

    An analysis never ends a run: if one fails, the run goes on, the failure is reported in
    one line and its traceback is kept in ``<run dir>/analysis/<name>/errors.log``.
    """

    name = "analysis"

    def __init__(
        self,
        every_n_epochs: int | None,
        max_samples: int,
        layers: list[str] | None,
        split: str,
        before_training: bool = False,
    ) -> None:
        if every_n_epochs is not None and every_n_epochs < 1:
            raise self.error(
                f"every_n_epochs must be at least 1, got {every_n_epochs} (null: after the last epoch only)"
            )
        if max_samples < 1:
            raise self.error(f"max_samples must be at least 1, got {max_samples}")
        self.every_n_epochs, self.max_samples, self.layers, self.split = every_n_epochs, max_samples, layers, split
        self.before_training = before_training
        self.completed_epoch: int | None = None  # the last training epoch that ended
        self.analysed_epoch: int | None = None  # the last epoch analysed
        self.written: list[str] = []  # the JSON files written, for the run's closing summary

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        try:
            select_probes(pl_module, self.layers)
        except ZooError as error:
            raise self.error(str(error)) from None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.before_training and trainer.global_step == 0:
            self.run(trainer, pl_module, BEFORE_TRAINING)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.completed_epoch = trainer.current_epoch
        if self.every_n_epochs is not None and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self.run(trainer, pl_module, trainer.current_epoch)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.completed_epoch is not None and self.analysed_epoch != self.completed_epoch:
            self.run(trainer, pl_module, self.completed_epoch)

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        """Analyse the model as it is now and write the result under ``epoch``."""
        self.analysed_epoch = epoch
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "split"):
            raise self.error(f"needs zoo's ZooDataModule (it reads whole splits); got {type(datamodule).__name__}")
        inputs, targets = (t[: self.max_samples] for t in datamodule.split(self.split))
        writer = AnalysisWriter(trainer, self.name, epoch_label(epoch))
        when = "before training" if epoch == BEFORE_TRAINING else f"@ epoch {epoch}"
        members = f" of each of {pl_module.size} members" if isinstance(pl_module, Population) else ""
        rank_zero_info(f"{type(self).__name__} {when} on {len(inputs):,} {self.split} samples{members} ...")
        start = time.perf_counter()
        try:
            if isinstance(pl_module, Population):
                written = self._run_members(pl_module, datamodule, inputs, targets, trainer, epoch)
            else:
                written = self.write(self.analyse(pl_module, datamodule, inputs, targets), writer, epoch, inputs)
        except Exception as error:  # an analysis must not end the run nor cost it a checkpoint
            log = writer.log_error(f"{when}: {traceback.format_exc()}")
            where = f"; traceback in {log}" if log and not isinstance(error, ZooFailure) else ""
            rank_zero_warn(f"{type(self).__name__} {when} failed, training goes on: {error}{where}")
            return
        if written is not None:
            self.written.append(str(written))
        place = f", wrote {written}" if written is not None else ""
        rank_zero_info(f"{type(self).__name__} {when} took {time.perf_counter() - start:.1f} s{place}")

    def _run_members(
        self,
        population: Population,
        datamodule: pl.LightningDataModule,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        trainer: pl.Trainer,
        epoch: int,
    ) -> Any:
        """Every member analysed on its own (files per member); TensorBoard gets the population's spread."""
        summaries = []
        for index, member in enumerate(population.members()):
            result = self.analyse(member, datamodule, inputs, targets)
            writer = AnalysisWriter(trainer, self.name, epoch_label(epoch), member=index)
            written = self.write(result, writer, epoch, inputs)
            summaries.append(result.summary())
        spread = {}
        for key in summaries[0]:
            values = torch.tensor([summary[key] for summary in summaries], dtype=torch.float64)
            spread.update({key: values.nanmean().item(), f"{key}/std": values.std().item() if len(values) > 1 else 0.0})
        AnalysisWriter(trainer, self.name, epoch_label(epoch)).scalars(spread)
        return Path(written).parent.parent if written is not None else None

    def error(self, message: str) -> ZooError:
        """A user-facing error that names the callback."""
        return ZooError(f"{type(self).__name__}: {message}")

    def analyse(
        self,
        pl_module: pl.LightningModule,
        datamodule: pl.LightningDataModule,
        inputs: torch.Tensor,
        targets: torch.Tensor,
    ) -> Any:
        raise NotImplementedError

    def write(self, result: Any, writer: AnalysisWriter, epoch: int, inputs: torch.Tensor) -> Any:
        """Log ``result`` (on ``inputs``) and write its files through ``writer``; return the JSON's path."""
        raise NotImplementedError
