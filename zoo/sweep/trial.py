"""One trial of a sweep, in this process: fit, validate and test the best checkpoint, analyse, make its rows.

The trial builds one LightningCLI (``run=False``, as in Lightning's own examples), so the
data are loaded once for fit, validation and test. A trial of one seed gives one row; a
trial of a batch of seeds trains a ``Population`` and gives one row per member. Rows hold
scalars only (the CSV's columns) plus, under ``history``, the analysis numbers of every
epoch the training-time callbacks wrote. The full analysis results stay as JSON in the
trial's run folder.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from zoo.analyses import Samples, list_analyses
from zoo.callbacks.schedule import AnalysisCallback, spread
from zoo.checkpoints import read_checkpoint
from zoo.hparams import SessionFile, row_hparams, row_metrics, write_session
from zoo.io import write_json, written_together
from zoo.models.contract import member_count, member_nonzero_parameters
from zoo.models.population import flat_metrics, member_key
from zoo.runs import HParamsRecord
from zoo.sweep.spec import Analyses, Trial
from zoo.task import metric_names
from zoo.writer import AnalysisWriter


def run_trial(trial: Trial, analyses: Analyses, threads: int | None = None, devices: str = "1") -> list[dict[str, Any]]:
    """Run ``trial`` and return its rows (one, or one per member of a batch of seeds)."""
    from pytorch_lightning.callbacks import Timer
    from pytorch_lightning.loggers import TensorBoardLogger

    from zoo.cli import main, quiet_lightning
    from zoo.console import RunSummary

    quiet_lightning(logging.WARNING)
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")  # small tasks, short trials
    if threads:
        torch.set_num_threads(threads)
    settings = {**trial.common, **trial.overrides}
    args = trial.arguments(devices)
    cli = main(args, run=False)
    trainer, data = cli.trainer, cli.datamodule
    # The sweep says one line per trial, so the run's closing summary goes. Analyses during training
    # only where the sweep asks for them (they run once at the end); every other callback of the
    # config stays: SET or early stopping change what is trained. config.yaml still lists them all.
    # A trial's HParams sessions are written from its rows (_session), not by HParamsRecord.
    left_out = (RunSummary, HParamsRecord)
    left_out += () if "trainer.callbacks" in settings else (AnalysisCallback,)
    trainer.callbacks = [callback for callback in trainer.callbacks if not isinstance(callback, left_out)]
    cli.before_fit()
    trainer.fit(cli.model, datamodule=data)
    epochs = trainer.current_epoch  # the epochs trained (early stopping may end before max_epochs)
    timer = next(callback for callback in trainer.callbacks if isinstance(callback, Timer))
    train_seconds = timer.time_elapsed("train")  # now: loading a checkpoint below restores the Timer's offset
    best = trainer.checkpoint_callback.best_model_path
    trainer.validate(cli.model, datamodule=data, ckpt_path=best, verbose=False)
    metrics = flat_metrics(trainer.callback_metrics)
    trainer.test(cli.model, datamodule=data, ckpt_path=best, verbose=False)
    metrics.update(flat_metrics(trainer.callback_metrics))
    run_dir = Path(trainer.log_dir)
    model = cli.model
    members = member_count(model)  # none built: a thousand members would take seconds
    samples = trainer.global_step * data.hparams.batch_size * members  # every member's samples count
    shared = {
        "trial": trial.id,
        "config": trial.config,
        "family": trial.family or model.architecture,
        "overrides": json.dumps(trial.overrides, sort_keys=True),
        "batched": members,
        "params_nonzero": member_nonzero_parameters(model),
        "metric": _headline(model.task),
        "epochs": epochs,
        "analysis_settings": json.dumps(
            {
                analysis.name: {**vars(sampling), **dataclasses.asdict(options)}
                for analysis, sampling, options in analyses
            }
        ),
        "threads": torch.get_num_threads(),  # a row reproduces bit for bit on as many CPU threads only
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(timer.time_elapsed("test"), 3),
        "train_samples_per_second": round(samples / train_seconds, 1) if train_seconds else math.nan,
        "run_dir": str(run_dir),
    }
    board = next((logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)), None)
    summaries = {analysis.name: [] for analysis, _, _ in analyses}
    analysed = _analyse(  # every member at once
        model, data, analyses, run_dir, population=members > 1, board=(board, trainer), summaries=summaries
    )
    rows = []
    for index in range(members):
        one = index if members > 1 else None
        row = {**shared, "seed": trial.seeds[index], "member": "" if one is None else one}
        row.update(_metrics(metrics, model.task, one))
        row.update(analysed[index])
        row["history"] = _history(run_dir, one)
        rows.append(row)
    for analysis, _, _ in analyses if members > 1 else ():  # CUSTOM SCALARS: the members' mean and std
        writer = AnalysisWriter(None, prefix=analysis.name, step=trainer.global_step, tensorboard=board)
        writer.scalars(spread(summaries[analysis.name]))
    with written_together():  # a session file a member: one sync for them all
        for row in rows:
            _session(row, analyses, run_dir if members > 1 else None, board)
    return rows


def _headline(task: str) -> str:
    """The metric a study compares runs by: accuracy, or R² for regression (both: higher is better)."""
    return "acc" if task == "classification" else "r2"


def _metrics(metrics: dict[str, float], task: str, member: int | None) -> dict[str, float]:
    """Validation (best checkpoint) and test metrics of the model, or of one member of a population."""
    row = {}
    for stage in ("val", "test"):
        for name in ("loss", *metric_names(task)):
            key = f"{stage}/{name}" if member is None else member_key(stage, name, member)
            if key in metrics:
                row[f"{stage}_{name}"] = round(metrics[key], 6)
    return row


def _analyse(
    model, data, analyses: Analyses, run_dir: Path, *, population: bool, board: tuple, summaries: dict
) -> list[dict[str, float]]:
    """The analyses the sweep names, on the tested model's every member (batched where an analysis can).

    Per member: the summary numbers for its row, the rest as JSON. The figures, texts and histograms
    go to the trial's TensorBoard (``board``: its writer and the trainer) as a run's callback writes
    them, member 0's only; ``summaries`` collects each analysis's numbers, member by member.
    """
    rows: list[dict[str, float]] = []
    tensorboard, trainer = board
    best = trainer.checkpoint_callback.best_model_path
    epoch = int(read_checkpoint(best)["epoch"]) if tensorboard is not None else None  # the weights analysed
    for analysis, sampling, options in analyses:
        drawn = tensorboard is not None
        samples = Samples.of(data, sampling.split, sampling.max_samples, images=drawn)  # images: priors of figures
        results = analysis.run_each_member(model, samples, options, layers=None, cache={})
        rows = rows or [{} for _ in results]
        for index, result in enumerate(results):
            member = index if population else None
            suffix = "" if member is None else f"_member_{member:03d}"
            write_json(run_dir / "analysis" / "final" / f"{analysis.name}{suffix}.json", result)
            summary = analysis.summary(result)
            summaries[analysis.name].append(summary)
            rows[index].update({f"{analysis.name}.{key}": value for key, value in summary.items()})
            if drawn and index == 0:
                writer = AnalysisWriter(
                    None, prefix=analysis.name, step=trainer.global_step, tensorboard=tensorboard, member=member
                )
                writer.write(analysis, result, epoch=epoch)
    return rows or [{} for _ in range(member_count(model))]


def _session(row: dict[str, Any], analyses: Analyses, population: Path | None, board) -> None:
    """The row as one HParams session (the study's experiment, its columns, is written with its summary).

    A single seed's session is its run folder; a batch of seeds gives one per member, in ``member_000/``, ….
    """
    hparams, metrics = row_hparams(row), row_metrics(row, (analysis for analysis, _, _ in analyses))
    if population is None:
        if board is not None:
            write_session(board, hparams, metrics)
        return
    with SessionFile(population / f"member_{int(row['member']):03d}") as writer:
        write_session(writer, hparams, metrics)


def _history(run_dir: Path, member: int | None) -> dict[str, list]:
    """The numbers each analysis declares ``over_epochs``, at every epoch its training-time callback analysed.

    ``epoch`` lists the epochs; a number an analysis did not produce at an epoch is ``None``.
    """
    at: dict[int, dict[str, Any]] = {}
    for analysis in list_analyses():
        kept = [number for number in analysis.numbers if number.over_epochs]
        folder = run_dir / "analysis" / analysis.name
        if member is not None:
            folder /= f"member_{member:03d}"
        for path in folder.glob("epoch_*.json") if kept else ():
            result = json.loads(path.read_text())
            numbers = at.setdefault(result["epoch"], {})
            for key, value in result.get("summary", {}).items():
                if any(number.matches(key) for number in kept):
                    numbers[f"{analysis.name}.{key}"] = value
    keys = sorted({key for numbers in at.values() for key in numbers})
    epochs = sorted(at)
    history: dict[str, list] = {"epoch": epochs} if epochs else {}
    history.update({key: [at[epoch].get(key) for epoch in epochs] for key in keys})
    return history
