"""Running a sweep: each trial claimed atomically, each finished trial's rows kept in a file of their own.

``<output>/trials/<trial>/rows.json`` is the record of a finished trial, written atomically;
``results.csv``, ``summary.md`` and the figures are rebuilt from all of them. A trial is
claimed with an exclusive ``flock`` on ``<output>/trials/<trial>/claim``, which the
operating system releases when its process ends, however it ends. So two sweep processes
on one folder share the work and never run a trial twice, a failing trial under
``--jobs N`` costs the others nothing, and a killed sweep, restarted, runs exactly the
trials that have no rows yet.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.io import write_json, write_text
from zoo.sweep.spec import Analyses, SweepSpec, Trial, expand
from zoo.sweep.summary import write_summary

BASE_COLUMNS = [
    "trial", "config", "family", "overrides", "seed", "member", "batched", "params_nonzero", "metric",
    "val_loss", "val_acc", "val_mse", "val_r2", "test_loss", "test_acc", "test_mse", "test_r2",
    "train_seconds", "eval_seconds", "train_samples_per_second", "run_dir",
]  # fmt: skip
MEASURED = {"train_seconds", "eval_seconds", "train_samples_per_second", "run_dir"}  # never identical twice


def trial_devices(slot: int, gpus: int) -> str:
    """``--trainer.devices`` for the ``slot``-th trial of a sweep: one device each, the GPUs in turn.

    Lightning's default (``auto``) would run every trial with DDP over all the GPUs; a sweep runs
    trials side by side instead, several on one GPU when ``--jobs`` exceeds the GPUs.
    """
    return f"[{slot % gpus}]" if gpus > 1 else "1"


def _usable_cores() -> int:
    """The cores this process may run on (taskset, Slurm, containers), not all the machine's."""
    if hasattr(os, "sched_getaffinity"):  # not on macOS
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def run_sweep(spec: SweepSpec, output: str | Path, jobs: int = 1, say: Callable[[str], None] = print) -> list[dict]:
    """Run every trial without rows yet, ``jobs`` at a time; then rebuild the table, summary and figures."""
    import torch

    output = Path(output)
    trials = expand(spec, str(output))
    pending = [trial for trial in trials if not _rows_file(trial).is_file()]
    say(f"{len(trials)} trials, {len(trials) - len(pending)} done, {len(pending)} to run, {jobs} at a time → {output}")
    threads = max(1, _usable_cores() // jobs)
    gpus = torch.cuda.device_count()
    start, failures, finished = time.perf_counter(), [], 0

    def report(trial: Trial, number: int, outcome: tuple[str, str]) -> None:
        nonlocal finished
        status, message = outcome
        finished += status == "done"
        elapsed = time.perf_counter() - start
        left = (elapsed / max(finished, 1)) * (len(pending) - finished - len(failures) - (status == "failed"))
        if status == "failed":
            failures.append(f"{trial.id}: {message}")
        eta = f"; about {_duration(left)} left" if status == "done" and left > 0 else ""
        say(f"trial {number}/{len(trials)} {trial.label}: {message}{eta}")

    numbers = {trial.id: trials.index(trial) + 1 for trial in pending}
    if jobs == 1:
        for trial in pending:
            say(f"trial {numbers[trial.id]}/{len(trials)} {trial.label} ...")
            report(trial, numbers[trial.id], attempt(trial, spec.analyses, threads, "1"))
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {}
            for slot, trial in enumerate(pending):
                where = (threads, trial_devices(slot, gpus), numbers[trial.id], len(trials))
                futures[pool.submit(attempt, trial, spec.analyses, *where)] = trial
            for future in as_completed(futures):
                trial = futures[future]
                report(trial, numbers[trial.id], future.result())
    rows = read_rows(output)
    write_results(output, rows)
    write_summary(output, rows, spec.figures)
    if failures:
        raise ZooError(
            f"{len(failures)} of {len(pending)} trials failed (their messages are above, tracebacks in "
            f"{output}/trials/<trial>/error.txt); the other rows are in {output}/results.csv, and running the "
            "sweep again retries only the failed trials:\n  " + "\n  ".join(failures)
        )
    return rows


def attempt(
    trial: Trial, analyses: Analyses, threads: int, devices: str, number: int = 0, total: int = 0
) -> tuple[str, str]:
    """Claim ``trial`` and run it unless another process holds it; ``(status, one-line message)``."""
    from zoo.errors import classify
    from zoo.sweep.trial import run_trial

    folder = _rows_file(trial).parent
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "claim", "a") as claim:
        try:
            fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return "busy", "run by another sweep process"
        if _rows_file(trial).is_file():
            return "done", "finished by another sweep process"
        if number:  # a worker of --jobs N says when it starts
            print(f"trial {number}/{total} {trial.label} ...", flush=True)
        started = time.perf_counter()
        try:
            rows = run_trial(trial, analyses, threads, devices)
        except (Exception, SystemExit) as error:  # a failing trial must not end the sweep
            failure = classify(error)
            message = str(failure) if failure else f"{type(error).__name__}: {error}"
            if isinstance(error, SystemExit):
                message = f"exit code {error.code} (its message is above)"
            write_text(folder / "error.txt", traceback.format_exc())
            return "failed", f"failed, {message}"
        write_json(_rows_file(trial), rows)
        (folder / "error.txt").unlink(missing_ok=True)
    metric = rows[0]["metric"]
    value = _mean([row.get(f"test_{metric}") for row in rows])
    mean = " (mean of the members)" if len(rows) > 1 else ""
    return "done", f"test/{metric} {value:.4f}{mean}, {_duration(time.perf_counter() - started)}"


def read_rows(output: str | Path) -> list[dict[str, Any]]:
    """Every finished trial's rows, in trial-name order (the record ``results.csv`` is rebuilt from)."""
    rows = []
    for path in sorted(Path(output).glob("trials/*/rows.json")):
        rows += json.loads(path.read_text())
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


def _rows_file(trial: Trial) -> Path:
    return Path(trial.output) / "trials" / trial.id / "rows.json"


def _mean(values: list) -> float:
    numbers = [float(value) for value in values if value not in (None, "")]
    return sum(numbers) / len(numbers) if numbers else float("nan")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
