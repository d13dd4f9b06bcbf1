"""What every analysis callback shares: when to run, on which samples, checking its layers early, and failures."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info, rank_zero_warn

from zoo.analyses import Analysis, Samples, get_analysis
from zoo.errors import ZooError, ZooFailure
from zoo.io import written_together
from zoo.models.contract import holds_members, select_probes
from zoo.writer import FIGURES, AnalysisWriter

BEFORE_TRAINING = -1  # the epoch number of the initialized network, analysed before the first step


def epoch_label(epoch: int) -> str:
    """How an analysed epoch appears in file names: ``007``, or ``init`` before training."""
    return "init" if epoch == BEFORE_TRAINING else f"{epoch:03d}"


class AnalysisCallback(pl.Callback):
    """Runs a declared :class:`~zoo.analyses.Analysis` during training and writes what it declares.

    Runs after every ``every_n_epochs``-th training epoch and after the last;
    ``every_n_epochs=None`` runs only after the last epoch. "The last" is whatever ended
    training: ``max_epochs``, ``max_steps``, a time limit or early stopping. With
    ``before_training``, the initialized network is analysed too, as epoch -1 (files
    ``*_init.*``), unless the run resumes. This class picks the samples (the first
    ``max_samples`` of ``split``), checks requested layers before training starts, says on
    the console what it does, and runs only on global rank zero; the declaration says how the
    analysis runs and what it writes (``<run dir>/analysis/<name>/``, TensorBoard under ``<name>/``).

    A failure does not end training: it is reported in one line, its traceback kept in
    ``<run dir>/analysis/<name>/errors.log``, and listed in ``failures``. An analysis that
    failed at every attempt ends the run non-zero once training is done (``RunSummary``).
    """

    def __init__(
        self,
        analysis: str | Analysis,
        *,
        every_n_epochs: int | None,
        max_samples: int,
        layers: list[str] | None = None,
        split: str = "train",
        before_training: bool = False,
        options: Any = None,
    ) -> None:
        self.analysis = get_analysis(analysis)
        self.name = self.analysis.name
        if every_n_epochs is not None and every_n_epochs < 1:
            raise self.error(
                f"every_n_epochs must be at least 1, got {every_n_epochs} (null: after the last epoch only)"
            )
        if max_samples < 1:
            raise self.error(f"max_samples must be at least 1, got {max_samples}")
        try:
            self.options = self.analysis.make_options(options, where="options")
        except ZooError as error:
            raise self.error(str(error)) from None
        self.every_n_epochs, self.max_samples, self.layers, self.split = every_n_epochs, max_samples, layers, split
        self.before_training = before_training
        self.cache: dict = {}  # what the analysis computes once per run
        self.earlier: dict[str, dict[int, dict]] = {}  # by folder: the results written so far, by epoch
        self.completed_epoch: int | None = None  # the last training epoch that ended
        self.analysed_epoch: int | None = None  # the last epoch analysed
        self.written: list[str] = []  # the JSON files written, for the run's closing summary
        self.failures: list[tuple[str, BaseException]] = []  # (when, error) of every failed attempt
        self.succeeded = 0  # attempts that gave a result (written or not: fast_dev_run writes none)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        same = [other for other in trainer.callbacks if isinstance(other, AnalysisCallback) and other.name == self.name]
        if len(same) > 1:  # one writer per folder: the second would write over the first's files
            raise self.error(
                f"trainer.callbacks runs the {self.name} analysis {len(same)} times, and each would write "
                f"analysis/{self.name}/ of the run; keep one. zoo/defaults.yaml already runs TaskSeparation and "
                "ActivationAnalysis (--trainer.callbacks+= adds another): to change their settings, give "
                "trainer.callbacks whole in a config (--print_config shows the list)"
            )
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
        analyses = [callback for callback in trainer.callbacks if isinstance(callback, AnalysisCallback)]
        if self is analyses[-1]:  # the last analysis: the others' final figures were drawn while it computed
            FIGURES.flush()  # the run's figures are complete before its loggers close

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        FIGURES.flush()  # a failed or stopped (SIGTERM) run keeps every figure of the analyses it made

    @property
    def failed(self) -> bool:
        """Every attempt failed (at least one was made)."""
        return bool(self.failures) and not self.succeeded

    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int) -> None:
        """Analyse the model as it is now and write the result under ``epoch``."""
        self.analysed_epoch = epoch
        if not trainer.is_global_zero or trainer.sanity_checking:
            return
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "split"):
            raise self.error(f"needs zoo's ZooDataModule (it reads whole splits); got {type(datamodule).__name__}")
        samples = Samples.of(datamodule, self.split, self.max_samples)
        population = holds_members(pl_module)
        when = "before training" if epoch == BEFORE_TRAINING else f"@ epoch {epoch}"
        each = f" of each of {pl_module.size} members" if population else ""
        rank_zero_info(f"{type(self).__name__} {when} on {len(samples.inputs):,} {self.split} samples{each} ...")
        start = time.perf_counter()
        writer = AnalysisWriter.of_run(trainer, self.name, epoch_label(epoch))

        def failed(error: BaseException, trace: str) -> None:  # here, or drawing its figures in the background
            log = writer.log_error(f"{when}: {trace}")
            self.failures.append((when, error))
            where = f"; traceback in {log}" if log and not isinstance(error, ZooFailure) else ""
            rank_zero_warn(f"{type(self).__name__} {when} failed, training goes on: {error}{where}")

        def figure_failed(error: BaseException, trace: str) -> None:
            self.succeeded -= 1  # counted below when the numbers were written
            failed(error, trace)

        try:
            if population:
                written = self._run_members(pl_module, samples, trainer, epoch, figure_failed)
            else:
                result = self.analyse(pl_module, samples)
                written = writer.write(
                    self.analysis, result, epoch=epoch, on_figure_error=figure_failed, earlier=self.earlier_of(writer)
                )
        except Exception as error:  # an analysis must not end training nor cost it a checkpoint
            failed(error, traceback.format_exc())
            return
        self.succeeded += 1
        if written is not None:
            self.written.append(str(written))
        place = f", wrote {written}" if written is not None else ""
        rank_zero_info(f"{type(self).__name__} {when} took {time.perf_counter() - start:.1f} s{place}")

    def analyse(self, model: pl.LightningModule, samples: Samples) -> Any:
        """The declared analysis of ``model`` on ``samples``, with this callback's options."""
        return self.analysis.run(model, samples, self.options, layers=self.layers, cache=self.cache)

    def _run_members(
        self,
        population: pl.LightningModule,
        samples: Samples,
        trainer: pl.Trainer,
        epoch: int,
        figure_failed: Callable[[BaseException, str], None],
    ) -> Path | None:
        """Every member analysed (at once where the analysis can), its files its own; TensorBoard gets the spread."""
        options = self.options
        results = self.analysis.run_each_member(population, samples, options, layers=self.layers, cache=self.cache)
        summaries, written = [], None
        with written_together():  # a thousand members' files: one sync, not one each
            for index, result in enumerate(results):
                writer = AnalysisWriter.of_run(trainer, self.name, epoch_label(epoch), member=index)
                summary = self.analysis.summary(result)
                summaries.append(summary)
                written = writer.write(
                    self.analysis,
                    result,
                    epoch=epoch,
                    on_figure_error=figure_failed,
                    earlier=self.earlier_of(writer),
                    summary=summary,
                )
        AnalysisWriter.of_run(trainer, self.name, epoch_label(epoch)).scalars(spread(summaries))
        return Path(written).parent.parent if written is not None else None

    def earlier_of(self, writer: AnalysisWriter) -> dict[int, dict] | None:
        """The results ``writer``'s figures look back on, by epoch: read from its folder once (a resumed
        run's earlier epochs), then kept in memory; ``None`` where it draws no figure."""
        if not writer.draws:
            return None
        folder = str(writer.folder)
        if folder not in self.earlier:
            self.earlier[folder] = {old["epoch"]: old for old in writer.earlier_results()}
        return self.earlier[folder]

    def error(self, message: str) -> ZooError:
        """A user-facing error that names the callback."""
        return ZooError(f"{type(self).__name__}: {message}")


def spread(summaries: list[dict[str, float]]) -> dict[str, float]:
    """The members' mean of every number, and its standard deviation (n − 1) as ``<key>/std``."""
    numbers = {}
    for key in summaries[0]:
        values = torch.tensor([summary[key] for summary in summaries], dtype=torch.float64)
        numbers.update({key: values.nanmean().item(), f"{key}/std": values.std().item() if len(values) > 1 else 0.0})
    return numbers


class RunAnalysis(AnalysisCallback):
    """Any registered analysis as a callback, by name (or the import path of its declaration).

    ``--trainer.callbacks+='{class_path: zoo.callbacks.RunAnalysis, init_args: {analysis: NAME}}'``;
    ``options`` are the analysis's own (see its declaration).

    Args:
        analysis: its name, e.g. ``task_separation``, or ``package.module.DECLARATION``.
        every_n_epochs: run after every n-th epoch; ``None``: after the last epoch only.
        max_samples: samples analysed.
        layers: hidden layers to analyse (default: all).
        split: the data split to analyse.
        before_training: also analyse the initialized network, as epoch -1.
        options: the analysis's options, e.g. ``{threshold: 0.8}``.
    """

    def __init__(
        self,
        analysis: str,
        every_n_epochs: int | None = None,
        max_samples: int = 2_000,
        layers: list[str] | None = None,
        split: Literal["train", "val", "test"] = "train",
        before_training: bool = False,
        options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            analysis,
            every_n_epochs=every_n_epochs,
            max_samples=max_samples,
            layers=layers,
            split=split,
            before_training=before_training,
            options=options,
        )
