"""Sweeps: many normal zoo runs from one YAML file, compared in one table.

A sweep file names configs, a grid of overrides per config, and seeds; each
combination is a trial, run as ``zoo fit`` then ``zoo test`` (best checkpoint)
in its own run folder under the sweep's output. After every trial the whole
``results.csv`` is rewritten atomically, so a killed sweep loses no finished
row and a restart skips the trials already there. ``summary.md`` and the plots
are rebuilt from the CSV. See ``sweeps/architectures.yaml`` for the format.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import os
import statistics
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml
from pytorch_lightning.callbacks import Timer

from zoo.errors import ZooError
from zoo.figures import render, save_png
from zoo.io import write_text

COLUMNS = [
    "trial",
    "config",
    "family",
    "overrides",
    "seed",
    "params_nonzero",
    "best_val_acc",
    "test_acc",
    "train_seconds",
    "eval_seconds",
    "train_samples_per_second",
    "run_dir",
]
TIMING = {"train_seconds", "eval_seconds", "train_samples_per_second"}  # measured, so never identical twice
MARKERS = {"FCNet": "o", "ColumNet": "s", "SparseNet": "^"}


@dataclass(frozen=True)
class Trial:
    config: str
    overrides: dict[str, Any] = field(hash=False)
    seed: int
    output: str
    common: dict[str, Any] = field(hash=False, default_factory=dict)

    @property
    def id(self) -> str:
        """Stable name: the config's stem and a hash of what makes the trial what it is."""
        key = json.dumps([self.config, self.overrides, self.common, self.seed], sort_keys=True)
        return f"{Path(self.config).stem}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"

    def flags(self) -> list[str]:
        values = {**self.common, **self.overrides}
        return [f"--{key}={json.dumps(value)}" for key, value in values.items()]


def load_sweep(path: str | Path, output: str | Path | None = None) -> list[Trial]:
    """Expand a sweep file into trials: every config × its grid's combinations × every seed."""
    path = Path(path)
    spec = read_sweep_file(path)
    unknown = set(spec) - {"output", "seeds", "common", "trials", "search"}
    if unknown:
        raise ZooError(f"{path}: unknown key {sorted(unknown)[0]!r}; accepted: output, seeds, common, trials, search")
    if not spec.get("trials"):
        hint = " (it has a search: block: run it with --search)" if spec.get("search") else ""
        raise ZooError(f"{path}: lists no trials{hint}; give 'trials: [{{config: configs/fc.yaml, grid: {{...}}}}]'")
    folder = str(output or spec.get("output") or Path("sweeps") / "runs" / path.stem)
    trials = []
    for entry in spec["trials"]:
        config = entry.get("config")
        if not config or not Path(config).is_file():
            raise ZooError(f"{path}: trial config {config!r} not found (paths are relative to where the sweep runs)")
        grid = entry.get("grid") or {}
        keys = list(grid)
        for values in itertools.product(*(grid[key] for key in keys)):
            for seed in spec.get("seeds") or [0]:
                trials.append(Trial(config, dict(zip(keys, values)), int(seed), folder, dict(spec.get("common") or {})))
    return trials


def read_sweep_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ZooError(f"sweep file not found: {path}")
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ZooError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ZooError(f"{path}: expected a mapping of output, seeds, common, trials, search")
    return spec


def trial_devices(slot: int, gpus: int) -> str:
    """``--trainer.devices`` for the ``slot``-th trial of a sweep: one device each, the GPUs in turn.

    Lightning's default (``auto``) would run every trial with DDP over all the GPUs; a sweep runs
    trials side by side instead, several on one GPU when ``--jobs`` exceeds the GPUs.
    """
    return f"[{slot % gpus}]" if gpus > 1 else "1"


def run_trial(trial: Trial, threads: int | None = None, devices: str = "1") -> dict[str, Any]:
    """One trial, in this process: fit, test the best checkpoint, log HParams; returns its CSV row."""
    import torch

    from zoo.cli import main

    if threads:
        torch.set_num_threads(threads)
    # interval given as text: its default is an Enum, which the saved config.yaml cannot hold
    timer = "--trainer.callbacks+={class_path: pytorch_lightning.callbacks.Timer, init_args: {interval: epoch}}"
    base = [
        "--config",
        trial.config,
        "--trainer.callbacks=null",
        timer,
        f"--trainer.devices={devices}",
        *trial.flags(),
        f"--seed_everything={trial.seed}",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
    ]
    runs = str(Path(trial.output) / "runs")
    fit = main(
        ["fit", *base, f"--trainer.logger.init_args.save_dir={runs}", f"--trainer.logger.init_args.name={trial.id}"]
    )
    fit_timer = _timer(fit.trainer)
    checkpoint = fit.trainer.checkpoint_callback
    # no logger for the test step, so its resolved config goes to default_root_dir: the trial's folder
    test_folder = Path(fit.trainer.log_dir) / "test"
    test = main(
        [
            "test",
            *base,
            "--trainer.logger=false",
            f"--trainer.default_root_dir={test_folder}",
            f"--ckpt_path={checkpoint.best_model_path}",
        ]
    )
    train_seconds = fit_timer.time_elapsed("train")
    samples = fit.trainer.global_step * fit.datamodule.hparams.batch_size
    row = {
        "trial": trial.id,
        "config": trial.config,
        "family": type(fit.model).__name__,
        "overrides": json.dumps(trial.overrides, sort_keys=True),
        "seed": trial.seed,
        "params_nonzero": fit.model.parameter_counts()["nonzero"],
        "best_val_acc": round(float(checkpoint.best_model_score), 6),
        "test_acc": round(float(test.trainer.callback_metrics["test/acc"]), 6),
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(_timer(test.trainer).time_elapsed("test"), 3),
        "train_samples_per_second": round(samples / train_seconds, 1) if train_seconds else math.nan,
        "run_dir": fit.trainer.log_dir,
    }
    hparams = {
        "config": trial.config,
        "family": row["family"],
        "seed": trial.seed,
        **{key: json.dumps(value) for key, value in trial.overrides.items()},
    }
    fit.trainer.logger.log_hyperparams(
        hparams,
        {
            "hp/test_acc": row["test_acc"],
            "hp/best_val_acc": row["best_val_acc"],
            "hp/params_nonzero": row["params_nonzero"],
        },
    )
    return row


def _run_guarded(trial: Trial, threads: int, devices: str = "1") -> dict[str, Any]:
    """``run_trial``, with a failing trial (zoo exits on bad input) named in one error."""
    try:
        return run_trial(trial, threads, devices)
    except SystemExit as exit_:
        raise ZooError(
            f"trial {trial.id} ({trial.config}, overrides {trial.overrides}, seed {trial.seed}) failed with exit "
            f"code {exit_.code}; the message above says why"
        ) from None


def _timer(trainer) -> Timer:
    return next(callback for callback in trainer.callbacks if isinstance(callback, Timer))


def read_results(folder: Path) -> list[dict[str, str]]:
    path = folder / "results.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_results(folder: Path, rows: list[dict[str, Any]]) -> Path:
    """Rewrite the whole CSV through a temporary file: a kill leaves the old table or the new one."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(folder / "results.csv", buffer.getvalue())


def run_sweep(trials: list[Trial], jobs: int = 1, report: Callable[[str], None] = print) -> list[dict[str, str]]:
    """Run the trials not yet in ``results.csv``, ``jobs`` at a time, then rebuild the summary and plots."""
    import torch

    if not trials:
        return []
    folder = Path(trials[0].output)
    folder.mkdir(parents=True, exist_ok=True)
    rows = read_results(folder)
    done = {row["trial"] for row in rows}
    pending = [trial for trial in trials if trial.id not in done]
    report(f"{len(trials)} trials, {len(trials) - len(pending)} already done, {len(pending)} to run, {jobs} at a time")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    gpus = torch.cuda.device_count()
    if jobs == 1:
        for trial in pending:
            rows.append(_run_guarded(trial, threads))
            write_results(folder, rows)
            report(f"done {trial.id}: test/acc {rows[-1]['test_acc']}")
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_run_guarded, trial, threads, trial_devices(slot, gpus)): trial
                for slot, trial in enumerate(pending)
            }
            for future in as_completed(futures):
                rows.append(future.result())
                write_results(folder, rows)
                report(f"done {futures[future].id}: test/acc {rows[-1]['test_acc']}")
    rows = read_results(folder)
    write_summary(folder, rows)
    return rows


def write_summary(folder: Path, rows: list[dict[str, str]]) -> None:
    """``summary.md`` (mean ± std over seeds) and the two comparison plots."""
    groups: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in rows:
        groups.setdefault((row["config"], row["overrides"]), []).append(row)
    lines = [
        "| family | config | overrides | seeds | nonzero params | test acc | best val acc | train s | eval s |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ordered = sorted(groups.values(), key=lambda group: -statistics.fmean(float(row["test_acc"]) for row in group))
    for group in ordered:
        first = group[0]
        lines.append(
            f"| {first['family']} | {first['config']} | `{first['overrides']}` | {len(group)} | "
            f"{int(first['params_nonzero']):,} "
            f"| {_mean_std(group, 'test_acc', 100, '%')} | {_mean_std(group, 'best_val_acc', 100, '%')} "
            f"| {_mean_std(group, 'train_seconds')} | {_mean_std(group, 'eval_seconds')} |"
        )
    text = (
        "# Sweep summary\n\nMean ± standard deviation over seeds, best test accuracy first.\n\n"
        + "\n".join(lines)
        + "\n"
    )
    write_text(folder / "summary.md", text)
    save_png(
        folder / "accuracy_vs_parameters.png", render(_scatter(rows, "params_nonzero", "nonzero parameters", log=True))
    )
    save_png(
        folder / "accuracy_vs_train_time.png", render(_scatter(rows, "train_seconds", "training time (s)", log=False))
    )


def comparable(rows: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    """Rows without what is measured rather than computed (times) or placed (run folders), sorted."""
    return sorted(
        ({key: value for key, value in row.items() if key not in TIMING | {"run_dir"}} for row in rows),
        key=lambda row: row["trial"],
    )


def _mean_std(group: list[dict[str, str]], column: str, scale: float = 1, unit: str = "") -> str:
    values = [float(row[column]) * scale for row in group]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {spread:.2f}{unit}"


def _scatter(rows: list[dict[str, str]], column: str, label: str, log: bool):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.5, 4.5), layout="constrained")
    axes = figure.add_subplot()
    for family in sorted({row["family"] for row in rows}):
        members = [row for row in rows if row["family"] == family]
        axes.scatter(
            [float(row[column]) for row in members],
            [100 * float(row["test_acc"]) for row in members],
            marker=MARKERS.get(family, "D"),
            label=family,
            alpha=0.8,
        )
    if log:
        axes.set_xscale("log")
    axes.set_xlabel(label)
    axes.set_ylabel("test accuracy (%)")
    axes.set_title(f"Test accuracy vs {label}")
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


SPACE_KINDS = ("float", "int", "categorical")


def run_search(
    path: str | Path,
    output: str | Path | None = None,
    storage: str | None = None,
    report: Callable[[str], None] = print,
) -> list[dict[str, str]]:
    """An Optuna study (TPE) over the ``search:`` block of a sweep file; every trial a normal zoo run.

    The study lives in ``storage``: by default SQLite in the output folder; with a database URL
    (``postgresql://user:password@host/db``) workers on several machines share one study. Each
    worker runs until the study holds ``trials`` finished trials, so a restart continues it.
    """
    import optuna

    path = Path(path)
    spec = read_sweep_file(path)
    search = spec.get("search")
    if not search or not search.get("config") or not search.get("space"):
        raise ZooError(f"{path}: needs a search: block with config, space and trials")
    folder = Path(output or spec.get("output") or Path("sweeps") / "runs" / path.stem)
    folder.mkdir(parents=True, exist_ok=True)
    space = {key: _parse_space(key, value) for key, value in search["space"].items()}
    direction = search.get("direction", "maximize")
    study = optuna.create_study(
        study_name=search.get("study", path.stem),
        storage=storage or search.get("storage") or f"sqlite:///{folder.resolve() / 'study.db'}",
        direction=direction,
        load_if_exists=True,
    )
    # A sampler seeded alike on every start would replay its first draws in a resumed study and
    # in every worker; by default it is unseeded, and a sampler_seed is offset by the trials so far.
    sampler_seed = search.get("sampler_seed")
    study.sampler = optuna.samplers.TPESampler(
        seed=None if sampler_seed is None else int(sampler_seed) + len(study.trials)
    )
    wanted = int(search.get("trials", 20))

    def objective(optuna_trial) -> float:
        overrides = {key: suggest(optuna_trial) for key, suggest in space.items()}
        trial = Trial(
            search["config"], overrides, int(search.get("seed", 0)), str(folder), dict(spec.get("common") or {})
        )
        row = _run_guarded(trial, threads=0)
        rows = [existing for existing in read_results(folder) if existing["trial"] != trial.id] + [row]
        write_results(folder, rows)
        report(f"search trial {optuna_trial.number}: {overrides} → best val/acc {row['best_val_acc']}")
        return float(row["best_val_acc"])

    finished = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    report(f"study {study.study_name}: {finished} of {wanted} trials finished")
    if finished < wanted:
        study.optimize(
            objective, callbacks=[optuna.study.MaxTrialsCallback(wanted, states=(optuna.trial.TrialState.COMPLETE,))]
        )
    rows = read_results(folder)
    write_summary(folder, rows)
    report(f"best: {study.best_params} → {study.best_value}")
    return rows


def _parse_space(key: str, value: dict) -> Callable:
    """``{float: [low, high], log: true}``, ``{int: [low, high]}`` or ``{categorical: [choices]}``."""
    kinds = [kind for kind in SPACE_KINDS if kind in value]
    if len(kinds) != 1:
        raise ZooError(f"search space for {key}: give exactly one of {', '.join(SPACE_KINDS)}, got {value}")
    kind, log = kinds[0], bool(value.get("log", False))
    if kind == "categorical":
        choices = [json.dumps(choice) for choice in value[kind]]  # Optuna's choices must be scalars: encode lists
        return lambda trial: json.loads(trial.suggest_categorical(key, choices))
    low, high = value[kind]
    if kind == "float":
        return lambda trial: trial.suggest_float(key, float(low), float(high), log=log)
    return lambda trial: trial.suggest_int(key, int(low), int(high), log=log)
