"""What a zoo run prints: its layers at the start, where everything went at the end.

Lightning's own model summary lists the metric collections as layers and a FLOPs column
of zeros; ``LayerSummary`` replaces it with the layers' stored and nonzero parameters and
the probe points the analyses read. ``RunSummary`` ends every command with the few lines
a researcher needs next: the best metric and its epoch, the checkpoints, the run folder,
the analysis files, and the ``tensorboard`` command (shell-quoted, so that it works when pasted).
"""

from __future__ import annotations

import csv
import io
import math
import shlex
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter, ModelSummary
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_info
from torchmetrics import Metric, MetricCollection

from zoo.analyses import list_analyses
from zoo.errors import ZooError, classify, first_line
from zoo.io import atomic_file, write_text
from zoo.models.base import count_parameters
from zoo.models.contract import holds_members
from zoo.runs import run_dir


class LayerSummary(ModelSummary):
    """The model's top-level layers with their stored and nonzero parameters, and its probe points."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        rows = [("layer", "type", "stored", "nonzero")]
        for name, module in pl_module.named_children():
            if isinstance(module, (Metric, MetricCollection)):
                continue
            counts = count_parameters(module)
            rows.append((name, type(module).__name__, f"{counts['stored']:,}", f"{counts['nonzero']:,}"))
        widths = [max(len(row[column]) for row in rows) for column in range(4)]
        lines = [
            "  ".join(_aligned(cell, width, column < 2) for column, (cell, width) in enumerate(zip(row, widths)))
            for row in rows
        ]
        probes = getattr(pl_module, "probes", {})
        if probes:
            lines.append("probes: " + ", ".join(f"{name} ({probe.units})" for name, probe in probes.items()))
        rank_zero_info("\n".join(lines))


class RunSummary(pl.Callback):
    """A few closing lines: best metric and epoch, checkpoints, run folder, analysis files, TensorBoard.

    The best so far travels in the checkpoints (``state_dict``), so that a run resumed with
    ``--ckpt_path last`` names the same best epoch as its ``best.ckpt``.
    """

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor, self.mode = monitor, mode
        self.picker = None  # the checkpoint callback whose monitored metric picks the best, if one does
        self.best: tuple[float, int] | None = None
        self.started = time.perf_counter()
        self.first_epoch = 0  # where this fit began: a resumed one's epoch

    def state_dict(self) -> dict:
        return {"best": list(self.best) if self.best is not None else None}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restored before ``on_fit_start`` when a fit resumes."""
        best = state_dict.get("best")
        self.best = (float(best[0]), int(best[1])) if best is not None else None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started, self.first_epoch = time.perf_counter(), 0  # best is not reset: a resumed fit restored it
        # zoo's own checkpoint comes after the config's callbacks: the summary's best is the one --ckpt_path best loads
        picker = next((callback for callback in reversed(trainer.checkpoint_callbacks) if callback.monitor), None)
        self.picker = picker
        if picker is not None:
            self.monitor, self.mode = picker.monitor, picker.mode

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor)
        if trainer.sanity_checking or value is None or not math.isfinite(float(value)):
            return
        value = float(value)
        better = self.best is None or (value > self.best[0] if self.mode == "max" else value < self.best[0])
        if better and trainer.state.fn == "fit":
            self.best = (value, trainer.current_epoch)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.first_epoch = trainer.current_epoch  # a resumed fit's loops are restored by now

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        seconds = time.perf_counter() - self.started
        epochs, first = trainer.current_epoch, self.first_epoch
        if first:  # this process's clock saw only the epochs it trained
            resumed = f"resumed at epoch {first}: {_counted(epochs - first, 'epoch')} in {_duration(seconds)}"
            lines = [f"Done: {_counted(epochs, 'epoch')} ({resumed})."]
        else:
            lines = [f"Done: {_counted(epochs, 'epoch')} in {_duration(seconds)}."]
        if self.best is not None:
            picked = self.picker.best_model_path if self.picker is not None else ""  # the file, not its name template
            if picked and self.picker.dirpath and Path(picked).is_relative_to(self.picker.dirpath):
                picked = Path(picked).relative_to(self.picker.dirpath)  # a "/" in the template makes folders
            picked = f", which picked {picked}" if picked else ""
            mean = f" (the mean of {pl_module.size} members)" if holds_members(pl_module) else ""
            lines.append(f"  best {self.monitor}  {metric_text(self.best[0])}{mean} at epoch {self.best[1]}{picked}")
        checkpoints = sorted({Path(path) for callback in trainer.checkpoint_callbacks for path in _paths(callback)})
        if checkpoints:
            lines.append("  checkpoints     " + ", ".join(str(path) for path in checkpoints))
        if trainer.fast_dev_run:
            lines.append(
                "  fast_dev_run    checked that every step runs; wrote nothing (no run folder, checkpoint or analysis)"
            )
        elif trainer.global_step == 0:
            lines.append(
                "  no step trained (see trainer.max_steps, limit_train_batches, max_time): no checkpoint, no analysis"
            )
        self._where(trainer, lines)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """A test or validation on its own, after Lightning's table: what was evaluated, and where it went."""
        if stage in ("test", "validate") and trainer.state.fn == stage:
            what = f"of {trainer.ckpt_path}" if trainer.ckpt_path else "of the weights as built (no checkpoint)"
            self._where(trainer, [f"{'Test' if stage == 'test' else 'Validation'} done, {what}."])

    def _where(self, trainer: pl.Trainer, lines: list[str]) -> None:
        if not trainer.is_global_zero:
            return
        log_dir = run_dir(trainer)
        if log_dir and trainer.loggers:
            folder = Path(log_dir)
            lines.append(f"  run folder      {folder}")
            written = [callback.written for callback in trainer.callbacks if getattr(callback, "written", None)]
            for files in written:
                last = Path(files[-1])
                if last.is_dir():  # a population's: the analysis folder, one folder per member in it
                    members = sorted(entry.name for entry in last.iterdir() if entry.is_dir())
                    each = f"{members[0]} … {members[-1]}" if members else "no member folder"
                    results = _counted(len(list((last / members[0]).glob("epoch_*.json"))) if members else 0, "result")
                    lines.append(f"  analysis        {last}  ({results} for each member, in {each})")
                else:  # the folder's results: a resumed run's earlier ones too
                    results = _counted(len(list(last.parent.glob("epoch_*.json"))), "result")
                    lines.append(f"  analysis        {last.parent}  ({results}, last {last.name})")
            if any(isinstance(logger, TensorBoardLogger) for logger in trainer.loggers):
                lines.append(f"  watch it        tensorboard --logdir {shlex.quote(str(folder.parent))}")
            if any(isinstance(logger, CSVLogger) for logger in trainer.loggers):
                lines.append(f"  metrics         {folder / 'metrics.csv'}")
        failed = failed_analyses(trainer)
        for callback in failed:
            when, error = callback.failures[-1]
            attempts = f"{len(callback.failures)} attempt{'s' * (len(callback.failures) > 1)}, last {when}"
            lines.append(f"  FAILED          {callback.name}: {first_line(error)} ({attempts})")
        print("\n".join(lines), flush=True)
        if failed:
            raise analyses_failed(failed)


def failed_analyses(trainer: pl.Trainer) -> list:
    """The analysis callbacks of ``trainer`` that failed at every attempt."""
    return [callback for callback in trainer.callbacks if getattr(callback, "failed", False)]


def analyses_failed(callbacks: list) -> ZooError:
    """The run's failure when configured analyses produced nothing, with the code of the first one's cause.

    A mistake in the input (2) or a fault of the environment (4) keeps its code; anything else
    is a bug in zoo (1), its traceback in the analysis's ``errors.log``.
    """
    causes = [classify(callback.failures[-1][1]) for callback in callbacks]
    names = ", ".join(f"{callback.name} ({first_line(callback.failures[-1][1])})" for callback in callbacks)
    failure = ZooError(f"every attempt of an analysis failed, so the run has no result for it: {names}")
    failure.exit_code = next((cause.exit_code for cause in causes if cause is not None), 1)
    return failure


def _aligned(cell: str, width: int, left: bool) -> str:
    return cell.ljust(width) if left else cell.rjust(width)


def metric_text(value: float) -> str:
    """A metric in four decimals, or four significant digits below 0.001 (an MSE of 2.5e-05 is not 0.0000)."""
    return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3e}"


def _paths(callback) -> list[str]:
    """Every checkpoint a callback keeps: its best, its top k (``save_top_k``) and its last."""
    kept = [callback.best_model_path, *callback.best_k_models, callback.last_model_path]
    return [path for path in kept if path and Path(path).is_file()]


def _duration(seconds: float) -> str:
    if seconds < 10:  # a small network's fit: rounded to whole seconds it would read "0 s"
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _counted(count: int, noun: str) -> str:
    """``1 epoch``, ``2 epochs``, ``1,000 results``."""
    return f"{count:,} {noun}{'s' * (count != 1)}"


class PredictionWriter(BasePredictionWriter):
    """``zoo predict`` writes what it predicted into its run folder: a tensor file and a CSV, and says where.

    The CSV has a row per sample of the split predicted (the test split), with its target and
    the prediction: the class and its probability, or each output; a population has a row per
    sample and member.
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        if not trainer.is_global_zero or not predictions:
            return
        outputs = torch.cat(predictions, dim=-2).detach().cpu()  # (N, K), or (members, N, K)
        folder = Path(run_dir(trainer) or trainer.default_root_dir)
        targets = trainer.datamodule.split("test")[1].cpu()[: outputs.shape[-2]]
        with atomic_file(folder / "predictions.pt") as handle:
            torch.save({"outputs": outputs, "targets": targets}, handle)
        members = pl_module.by_member(outputs)  # (M, N, K)
        count, samples = members.shape[:2]
        columns = [torch.arange(samples).repeat(count)]  # sample, member-major as the rows
        header = ["sample"]
        if holds_members(pl_module):
            columns.append(torch.arange(count).repeat_interleave(samples))
            header.append("member")
        if pl_module.task == "classification":
            probability, predicted = members.softmax(-1).max(-1)
            cells = [c.tolist() for c in (*columns, targets.repeat(count), predicted.flatten())]
            cells.append([f"{value:.6f}" for value in probability.flatten().tolist()])
            header += ["target", "predicted", "probability"]
        else:
            values = torch.cat([targets.expand(count, -1, -1), members], -1).flatten(0, 1)  # (M·N, T + K)
            cells = [c.tolist() for c in columns]
            cells += [[f"{value:.6g}" for value in column] for column in values.T.tolist()]
            header += [f"target_{k}" for k in range(targets.shape[1])]
            header += [f"output_{k}" for k in range(members.shape[2])]
        rows = zip(*cells)
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows([header, *rows])
        write_text(folder / "predictions.csv", buffer.getvalue())
        print(f"Predictions of {outputs.shape[-2]:,} test samples: {folder / 'predictions.csv'} and predictions.pt")


class StageRuns(pl.Callback):
    """Train and val curves also as runs of their own, ``<run>/train`` and ``<run>/val``, for CUSTOM SCALARS.

    TensorBoard colours a line by its run, never by its tag: ``train/loss`` and ``val/loss`` of
    one run share a colour, told apart by a marker whose meaning changes between charts. Every
    ``train/<name>`` and ``val/<name>`` the run logs (``name`` one of ``loss`` and the task's
    metrics) is written again as ``<name>`` in the stage's run, at the same step, so that the
    dashboard's training charts draw train and val in two colours named in the run list.
    """

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.names = {"loss", *metrics}
        self.writers: dict[str, object] = {}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        from pytorch_lightning.loggers import TensorBoardLogger

        boards = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if stage != "fit" or not boards or not trainer.is_global_zero or trainer.fast_dev_run:
            return
        logger = boards[0]
        if getattr(logger, "_zoo_stage_runs", False):  # a second fit of one trainer: wrapped once
            return
        logged = logger.log_metrics

        def log_metrics(metrics, step=None):  # Lightning's own call, then the copies
            logged(metrics, step)
            self.copy(logger.log_dir, metrics, step)

        logger.log_metrics, logger._zoo_stage_runs = log_metrics, True

    def copy(self, folder: str, metrics: dict, step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        for key, value in metrics.items():
            stage, _, name = key.partition("/")
            if stage in ("train", "val") and name in self.names:
                if stage not in self.writers:
                    self.writers[stage] = SummaryWriter(str(Path(folder) / stage))
                self.writers[stage].add_scalar(name, float(value), global_step=step)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        for writer in self.writers.values():
            writer.close()
        self.writers = {}


class DashboardLayout(pl.Callback):
    """TensorBoard's CUSTOM SCALARS tab, laid out by zoo: loss and the task's metric first, then the analyses.

    Every chart overlays its series (train and val on one plot), so a curve with a single
    point still shows as a marker next to the others. A population gets, per metric and
    stage, its mean with the members' ± std and min–max as bands (margin charts) and every member
    as one line of one chart, instead of a card per member.
    """

    def __init__(self, metrics: tuple[str, ...]) -> None:
        self.metrics = metrics

    def layout(self, *, population: bool = False) -> dict:
        """Categories by number (TensorBoard sorts them by title); a population's bands and members get one each."""
        training = {"loss: train, val (a run each: two colours)": ["Multiline", [r"^loss$"]]}
        layout = {"1 training": training}
        if population:
            bands, members = {}, {}
            for metric in self.metrics:
                for stage in ("val", "train"):
                    mean = f"{stage}/{metric}"
                    std, extremes = [f"{mean}_mean_minus_std", f"{mean}_mean_plus_std"], [f"{mean}_min", f"{mean}_max"]
                    bands[f"{stage} {metric}: mean, band ± std of the members"] = ["Margin", [mean, *std]]
                    bands[f"{stage} {metric}: mean, band min–max of the members"] = ["Margin", [mean, *extremes]]
                    members[f"{stage} {metric}: each member"] = ["Multiline", [rf"^members/{stage}_{metric}/\d+$"]]
            layout["2 population: mean, ± std and min–max"], layout["3 population: each member"] = bands, members
        else:
            training.update({f"{metric}: train, val": ["Multiline", [rf"^{metric}$"]] for metric in self.metrics})
        analyses = (analysis for analysis in list_analyses() if analysis.layout)
        for number, analysis in enumerate(analyses, start=len(layout) + 1):
            charts = {title: ["Multiline", [rf"^{analysis.name}/{regex}$"]] for title, regex in analysis.layout.items()}
            layout[f"{number} {analysis.title}"] = charts
        return layout

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from pytorch_lightning.loggers import TensorBoardLogger

        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger) and trainer.is_global_zero:
                population = holds_members(pl_module)
                logger.experiment.add_custom_scalars(self.layout(population=population))
