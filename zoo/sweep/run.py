"""Running a grid sweep: a worker on the sweep's study, and ``results.csv`` from the study's record.

The study (``zoo.sweep.engine``) holds the queue and the record: the worker that creates it
enqueues every combination x seed once; each worker (``--jobs N`` starts N here; any number
on other machines with ``--storage URL``) takes waiting trials until none is left, then
rebuilds ``results.csv``, ``summary.md`` and the figures from the storage.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import sys
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from zoo.errors import EnvironmentFault, Interrupted, ZooError, ZooFailure, first_line
from zoo.io import to_jsonable, write_text
from zoo.sweep import engine
from zoo.sweep.spec import SweepSpec, Trial, check_trials, expand
from zoo.sweep.summary import write_summary

BASE_COLUMNS = [
    "trial", "config", "family", "overrides", "seed", "member", "batched", "params_nonzero", "metric",
    "val_loss", "val_acc", "val_mse", "val_r2", "test_loss", "test_acc", "test_mse", "test_r2",
    "train_seconds", "eval_seconds", "train_samples_per_second", "host", "run_dir",
]  # fmt: skip
MEASURED = {"train_seconds", "eval_seconds", "train_samples_per_second", "run_dir", "host"}  # never identical twice


def trial_devices(slot: int, gpus: int) -> str:
    """``--trainer.devices`` for the ``slot``-th trial of a sweep: one device each, the GPUs in turn.

    Lightning's default (``auto``) would run every trial with DDP over all the GPUs; a sweep runs
    trials side by side instead, several on one GPU when ``--jobs`` exceeds the GPUs.
    """
    return f"[{slot % gpus}]" if gpus > 1 else "1"


def check_devices(devices: str) -> None:
    """A worker's ``--devices``, tried on a Trainer before it takes a trial: refused, it would fail every trial
    it took (and a shared study's whole queue), each with the trainer's words, not the flag's."""
    import logging

    import yaml
    from lightning_fabric.utilities.exceptions import MisconfigurationException
    from pytorch_lightning import Trainer

    value = yaml.safe_load(devices)  # as the CLI reads --trainer.devices: 2, [0, 1], auto
    quiet = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level, quiet.level = quiet.level, logging.WARNING  # "GPU available: ..." belongs to the trials
    try:
        Trainer(devices=value, logger=False, enable_checkpointing=False, enable_progress_bar=False)
    except (MisconfigurationException, ValueError, TypeError) as error:
        said = first_line(error).rstrip(".")
        raise ZooError(
            f"--devices {devices}: {said}; e.g. --devices 1 (one CPU or GPU), or [2] for the third GPU"
        ) from None
    finally:
        quiet.level = level


def _usable_cores() -> int:
    """The cores this process may run on (taskset, Slurm, containers), not all the machine's."""
    if hasattr(os, "sched_getaffinity"):  # not on macOS
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def writable_folder(path: Path) -> Path:
    """The output folder, made; a file in its place is the user's mistake (exit 2), not the machine's."""
    for folder in (path, *path.parents):
        if folder.exists() and not folder.is_dir():
            raise ZooError(f"the output {path} cannot be a folder: {folder} is a file; give another --output")
    path.mkdir(parents=True, exist_ok=True)
    return path


def study_name(output: str | Path, study: str | None = None) -> str:
    return study or Path(output).resolve().name


def run_sweep(
    spec: SweepSpec,
    output: str | Path,
    jobs: int = 1,
    say: Callable[[str], None] = print,
    *,
    storage: str | None = None,
    study: str | None = None,
    devices: str | None = None,
    heartbeat: int = engine.HEARTBEAT,
    retry_failed: bool = False,
    threads: int | None = None,
) -> list[dict]:
    """Work on the sweep's study until no trial waits or runs (``jobs`` workers here); then the report.

    ``threads``: each trial's CPU threads (default: the usable cores ÷ ``jobs``). A row reproduces bit for
    bit on the same thread count only: more threads split a matrix product's sums differently.
    """
    import torch

    output = writable_folder(Path(output))
    trials = expand(spec, str(output))
    check_trials(trials)
    engine.check_output(output, storage)
    url = engine.storage_url(output, storage)
    opened = engine.open_study(
        engine.open_storage(url, heartbeat),
        study_name(output, study),
        engine.definition(spec, "grid"),
        "maximize",
        trials,
    )
    opened.set_user_attr("figures", to_jsonable(spec.figures))
    engine.record_output(output, storage)
    engine.name_objective(opened, "test metric (accuracy or R²), mean over the trial's seeds")
    if retry_failed:
        failed = engine.failures(opened)
        say(f"{engine.retry_failed(opened, sorted(failed))} failed trial(s) enqueued again")
    done = len({row["trial"] for row in engine.read_record(opened)[0]})
    say(f"{len(trials)} trials, {done} done, {len(trials) - done} to do, {jobs} worker(s) here → {output}")
    say(f"study {opened.study_name!r} in {engine.shown(url)}")
    if done == len(trials):
        say("the study is done: every trial has its rows, nothing to run; the report is rebuilt from the study")
    gpus = torch.cuda.device_count()
    slots = [devices or trial_devices(slot, gpus) for slot in range(jobs)]
    threads = threads or max(1, _usable_cores() // jobs)
    work = (spec, str(output), url, opened.study_name, threads, heartbeat)
    if jobs == 1:
        work_on(*work, slots[0], say=say)
    else:
        _work_in_processes([(*work, slot) for slot in slots])
    return report(opened, output, spec.figures, say=say)


def work_on(
    spec: SweepSpec,
    output: str,
    url: str,
    name: str,
    threads: int,
    heartbeat: int,
    devices: str,
    say: Callable[[str], None] = lambda line: print(line, flush=True),
) -> engine.Outcome:
    """One worker: take the grid's waiting trials until none is waiting or running."""
    import optuna

    signal.signal(signal.SIGTERM, _stop)
    study = optuna.load_study(study_name=name, storage=engine.open_storage(url, heartbeat))
    trials = {trial.id: trial for trial in expand(spec, output)}
    numbers = {key: index for index, key in enumerate(trials, start=1)}

    def take() -> tuple[Any, Trial, str] | None:
        optuna_trial = engine.take_waiting(study)
        if optuna_trial is None:
            return None
        trial = trials[optuna_trial.user_attrs[engine.KEY]]
        label = f"trial {numbers[trial.id]}/{len(trials)} {trial.label}"
        say(f"{label} ...")
        return optuna_trial, trial, label

    worker = engine.Worker(study, analyses=spec.analyses, threads=threads, devices=devices, say=say)
    return worker.run(take, lambda rows: engine.mean(row.get(f"test_{row['metric']}") for row in rows))


def _work_in_processes(arguments: list[tuple]) -> None:
    """``--jobs N``: N workers in processes of their own; SIGTERM here stops them too (each gives its trial back)."""
    context = get_context("spawn")
    processes = [context.Process(target=_worker_process, args=work) for work in arguments]
    signal.signal(signal.SIGTERM, _stop)
    for process in processes:
        process.start()
    try:
        for process in processes:
            process.join()
    except Interrupted:  # Ctrl-C reaches the workers by itself; a SIGTERM to this process alone does not
        for process in processes:
            process.terminate()
        for process in processes:
            process.join()
        raise
    codes = sorted({process.exitcode for process in processes} - {0})
    if codes:  # the worker's own kind of failure (2, 3, 4, 130, 143); killed by a signal: the machine's
        failure = ZooFailure(f"a worker ended with exit code {codes[0]} (its message is above)")
        failure.exit_code = codes[0] if codes[0] > 0 else EnvironmentFault.exit_code
        raise failure


def _worker_process(*work) -> None:
    from zoo.errors import exit_on_failure

    def run() -> None:
        try:
            work_on(*work)
        except Interrupted as stopped:
            sys.exit(stopped.exit_code)  # quietly: the sweep's own process says how to resume

    exit_on_failure(run, program="sweep worker")


def _stop(signum, frame) -> None:
    raise Interrupted("stopped by SIGTERM", 143)


def read_rows(output: str | Path, storage: str | None = None, study: str | None = None) -> list[dict[str, Any]]:
    """The rows of a sweep's study (by default the SQLite one in ``output``), in the study's order."""
    import optuna

    name, url = study_name(output, study), engine.storage_url(output, storage)
    try:
        opened = optuna.load_study(study_name=name, storage=engine.open_storage(url))
    except KeyError:
        raise ZooError(f"no study {name!r} in {engine.shown(url)}") from None
    return engine.read_record(opened)[0]


def report(study, output: str | Path, figures=None, say: Callable[[str], None] = print) -> list[dict]:
    """``results.csv``, ``summary.md`` and the figures from the study's record; failed trials end in one message."""
    rows, problems = engine.read_record(study)
    for problem in problems:
        say(problem)
    write_results(output, rows)
    failed = engine.failures(study)
    write_summary(output, rows, figures, failed=failed)
    if failed:
        raise ZooError(
            f"{len(failed)} trial(s) failed (listed below, in summary.md and in the study); the other rows are in "
            f"{Path(output) / 'results.csv'}. Fix what failed outside the sweep file (the data, the machine), then add "
            "--retry-failed to run them again; a value of the sweep file itself makes another study: change it "
            "and give another --output:\n  " + "\n  ".join(f"{key}: {message}" for key, message in failed.items())
        )
    return rows


def write_results(output: str | Path, rows: list[dict[str, Any]]) -> Path:
    """``results.csv``: one line per trial (per member for batches of seeds), scalars only."""
    extra = sorted({key for row in rows for key in row} - set(BASE_COLUMNS) - {"history"})
    columns = [column for column in BASE_COLUMNS if any(column in row for row in rows)] + extra
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return write_text(Path(output) / "results.csv", buffer.getvalue())


def read_results(output: str | Path) -> list[dict[str, str]]:
    path = Path(output) / "results.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def comparable(rows: list[dict]) -> list[dict]:
    """Rows without what is measured rather than computed (times, folders), sorted: equal across reruns."""
    kept = [{key: value for key, value in row.items() if key not in MEASURED | {"history"}} for row in rows]
    return sorted(kept, key=lambda row: (row["trial"], str(row.get("member", ""))))


def default_output(path: str | Path, spec: SweepSpec) -> Path:
    return Path(spec.output or Path("sweeps") / "runs" / Path(path).stem)
