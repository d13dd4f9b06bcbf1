"""Run folders: reserved atomically, found again for resuming, and recorded for reproducing.

A run folder is ``<save_dir>/<name>/version_<N>/`` as Lightning's TensorBoard
logger lays it out. Lightning picks N as "one more than the largest", which two
fits started at the same moment can both pick; :func:`reserve_version` claims
N with ``mkdir``, which only one process can win. A folder has one writer at a
time: :func:`lock_run_folder` takes a lock that dies with its process, so two
resumes of one run started together cannot both write into it.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO

from zoo.analyses import Analysis
from zoo.errors import ZooError
from zoo.hparams import (
    SessionFile,
    analysis_values,
    latest_summary,
    ordered_columns,
    write_metrics,
    write_session,
)
from zoo.io import FILE_MODE, atomic_file, folders_to_make, remove_made, write_json, write_text, written_together
from zoo.models.contract import holds_members, member_count, member_nonzero_parameters
from zoo.models.population import flat_metrics, member_key

VERSION = re.compile(r"version_(\d+)$")
LOCK_FILE = ".lock"  # in the run folder; its content names the holder (pid and host)
PACKAGES = (
    "zoo",
    "torch",
    "pytorch-lightning",
    "torchmetrics",
    "jsonargparse",
    "tensorboard",
    "matplotlib",
    "scikit-learn",
    "numpy",
)


def versions(root: Path) -> list[int]:
    """The version numbers of the run folders under ``root``, ascending."""
    if not root.is_dir():
        return []
    return sorted(
        int(match.group(1)) for entry in root.iterdir() if entry.is_dir() and (match := VERSION.match(entry.name))
    )


_claims: list[list[Path]] = []  # run folders claimed inside each active released_on_failure() block
_locks: list[list[RunLock]] = []  # run-folder locks taken inside each active released_on_failure() block
_started: set[Path] = set()  # run folders in which a loop began (RunStarted)
_made: list[list[Path]] = []  # the folders above them that claiming made (lightning_logs/<name>), deepest first


def run_dir(trainer: pl.Trainer) -> str | None:
    """``trainer.log_dir`` without its broadcast: on rank 0, the run folder.

    Lightning's property is a collective under DDP (every rank gets rank 0's answer); asked by
    rank 0 alone, as code that only rank 0 runs does, it waits forever for the others, which
    train on. Rank 0's own logger already holds the answer: this returns it, as Lightning does.
    """
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    if not trainer.loggers:
        return trainer.default_root_dir
    logger = trainer.loggers[0]
    return logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir


def reserve_version(root: Path) -> int:
    """Claim the next free ``version_<N>`` under ``root`` by creating it; safe against concurrent runs."""
    if _claims:  # before making them, as making one may fail (a name too long)
        _made[-1].extend(folders_to_make(root))
    root.mkdir(parents=True, exist_ok=True)
    candidate = (versions(root) or [-1])[-1] + 1
    while True:
        try:
            (root / f"version_{candidate}").mkdir()
        except FileExistsError:
            candidate += 1
            continue
        if _claims:
            _claims[-1].append(root / f"version_{candidate}")
        return candidate


class RunLock:
    """A run folder's writer lock: held until :meth:`release`, until this object goes, or until its process ends."""

    def __init__(self, descriptor: int) -> None:
        self.descriptor: int | None = descriptor

    def release(self) -> None:
        if self.descriptor is not None:
            os.close(self.descriptor)  # closing the file drops its flock
            self.descriptor = None

    __del__ = release


def lock_run_folder(folder: Path) -> RunLock:
    """Take ``folder``'s writer lock, or refuse naming the process that holds it; keep the lock object to hold it.

    ``flock`` on ``<folder>/.lock``: the kernel drops it when its process ends, however it
    ends, so a killed run never leaves a stale lock. Taken before anything is written: a
    second writer leaves the folder as it found it.
    """
    if not folder.is_dir():  # a version the user named that does not exist yet: claimed as reserve_version does
        folder.mkdir(parents=True, exist_ok=True)
        if _claims:
            _claims[-1].append(folder)
    descriptor = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 1000).decode(errors="replace").strip() or "a process that has just started"
        os.close(descriptor)
        raise ZooError(
            f"{folder} is being written by another zoo run ({holder}); a run folder has one writer at a time: "
            "wait for that run to end, or start a new run (leave out --ckpt_path last)"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    lock = RunLock(descriptor)
    if _locks:
        _locks[-1].append(lock)
    return lock


@contextmanager
def released_on_failure(*, keep_locks: bool = False) -> Iterator[None]:
    """Run folders claimed in the block are removed again if it fails before a loop began in them.

    A run that diverged at step 10 keeps its folder (its curves show how); one whose data
    could not be read, or whose optimizer refused its arguments, leaves no ``version_N`` behind.
    The run-folder locks taken in the block are released when it ends, unless it succeeds
    with ``keep_locks`` (the caller runs in the folder afterwards, and keeps the lock).
    """
    _claims.append([])
    _locks.append([])
    _made.append([])
    try:
        yield
    except BaseException as error:
        if not (isinstance(error, SystemExit) and error.code in (0, None)):
            for folder in _claims[-1]:
                if folder.resolve() not in _started:
                    shutil.rmtree(folder, ignore_errors=True)
            remove_made(_made[-1])  # and the empty folders made to hold them
        keep_locks = False
        raise
    finally:
        _claims.pop()
        _made.pop()
        for lock in _locks.pop() if not keep_locks else ():
            lock.release()


class RunStarted(pl.Callback):
    """Marks the run folder as used when a loop begins, so that a later failure keeps it.

    A loop has begun once its data are set up: Lightning calls ``on_train_start`` (and
    ``on_validation_start``, ...) after that, ``on_fit_start`` before it, when a refused
    ``--trainer.limit_val_batches`` has yet to be found.
    """

    def _mark(self, trainer: pl.Trainer, *_: Any) -> None:
        if trainer.log_dir:
            _started.add(Path(trainer.log_dir).resolve())

    on_train_start = on_validation_start = on_test_start = on_predict_start = _mark


def run_folder_of(checkpoint: str | Path) -> Path | None:
    """The run folder a checkpoint was saved in (``<run>/checkpoints/x.ckpt``), if it is one."""
    path = Path(checkpoint)
    folder = path.parent.parent
    return folder if path.parent.name == "checkpoints" and (folder / "config.yaml").is_file() else None


def resume_number(folder: Path) -> int:
    """How many times a run folder has been resumed before: the next ``config.resume-<K>.yaml`` is K + 1."""
    return len(list(folder.glob("config.resume-*.yaml")))


def latest_checkpoint(root: Path, filename: str = "last.ckpt") -> tuple[int, Path] | None:
    """The newest run under ``root`` that holds ``checkpoints/<filename>``: its version and the path."""
    for version in reversed(versions(root)):
        path = root / f"version_{version}" / "checkpoints" / filename
        if path.is_file():
            return version, path
    return None


def keep_csv_metrics(trainer: pl.Trainer) -> None:
    """A resumed run's ``metrics.csv`` goes on where it stopped.

    Lightning's CSVLogger deletes the ``metrics.csv`` it finds in its folder (and warns that it
    will, also before a new run's first line, since zoo writes the folder's record first), which
    lost every epoch before a resume. Its writer appends to a file that exists; here the file is
    put back as it was once the writer has started, with its columns.
    """
    for logger in trainer.loggers:
        if not isinstance(logger, CSVLogger):
            continue
        path = Path(logger.log_dir) / "metrics.csv"
        kept = path.read_text() if path.is_file() else None
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Experiment logs directory .* exists and is not empty")
            writer = logger.experiment
        if kept:
            write_text(path, kept)
            writer.metrics_keys = next(csv.reader(io.StringIO(kept)), [])


def environment() -> dict[str, Any]:
    """What produced a run: package versions, the zoo source's git commit, the machine, the command."""
    installed = {}
    for package in PACKAGES:
        try:
            installed[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            installed[package] = None
    return {
        "git": _git_state(Path(__file__).resolve().parent.parent),
        "packages": installed,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cuda": torch.version.cuda,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] or ["cpu"],
        "command": sys.argv,
    }


def record_environment(
    log_dir: str | Path, filename: str = "environment.json", *, subcommand: str | None = None
) -> Path:
    """:func:`environment`, and the subcommand that made the run (``command`` is the process's: a caller's own
    when zoo runs inside it, a notebook's or a sweep's)."""
    return write_json(Path(log_dir) / filename, environment() | {"subcommand": subcommand}, indent=1)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written to a temporary file and renamed into place.

    A crash or kill while saving leaves the previous checkpoint intact instead of a
    truncated file that ``--ckpt_path last`` would then fail to load.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | os.PathLike, storage_options: Any | None = None
    ) -> None:
        with atomic_file(path) as handle:
            torch.save(checkpoint, handle)


def _git_state(folder: Path) -> dict[str, Any] | None:
    """Commit and uncommitted-changes flag of the checkout zoo runs from, if it is one."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


class HParamsRecord(pl.Callback):
    """Every run's hyper-parameters and final metrics, for TensorBoard's HParams dashboard (:mod:`zoo.hparams`).

    At fit start the run's session: ``family``, ``epochs``, ``seed`` and the flattened config
    (``model.hidden``, ``optimizer.lr``, ...), with the metric columns the dashboard shows; their
    values follow when they exist: the best and last validation metric, the nonzero parameters
    and the analyses' latest numbers at fit end, the test metrics at test end. A population's
    members get a session each, in ``<run>/member_000/``, … (their seed, their metrics, their
    analysis numbers); its own session counts parameters per member, and the population's
    total as ``hp/params_nonzero_population``.
    """

    def __init__(self, hparams: dict[str, Any], monitor: str, metrics: tuple[str, ...]) -> None:
        self.hparams, self.monitor, self.metrics = hparams, monitor, metrics

    def _boards(self, trainer: pl.Trainer) -> list:
        from pytorch_lightning.loggers import TensorBoardLogger

        if not trainer.is_global_zero:  # other DDP ranks hold a stand-in writer that writes nothing
            return []
        return [logger.experiment for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]

    def _columns(self, trainer: pl.Trainer, population: bool) -> list[str]:
        stage, _, name = self.monitor.partition("/")
        headline = next((metric for metric in ("acc", "r2") if metric in self.metrics), self.metrics[0])
        names = [f"hp/best_{stage}_{name}", *(f"hp/{stage}_{metric}" for metric in self.metrics)]
        names += [f"hp/test_{metric}" for metric in self.metrics]
        names += ["hp/params_nonzero", *(["hp/params_nonzero_population"] if population else [])]
        return ordered_columns([f"hp/{stage}_{headline}", f"hp/test_{headline}"], names, _analyses(trainer))

    def _session(self, trainer: pl.Trainer, pl_module: pl.LightningModule, member: int | None = None) -> dict:
        seeds = getattr(pl_module, "seeds", None)
        flat = {key: value for key, value in self.hparams.items() if key != "seed_everything"}
        seed = seeds[member] if member is not None else self.hparams.get("seed_everything")
        fitted = trainer.state.fn == "fit"  # a test on its own does not know how long its checkpoint trained
        first = {"family": pl_module.architecture, "epochs": trainer.max_epochs if fitted else None, "seed": seed}
        return {**first, **({"member": member} if member is not None else {}), **flat}

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Lightning's ``hparams.yaml``: the model's and the data's hyper-parameters as built.

        Both keep theirs out of Lightning's logging (this callback records the whole config), which
        left the file ``{}``; Lightning writes it from the logger's ``hparams`` once, before fit start.
        """
        from pytorch_lightning.loggers import TensorBoardLogger

        data = trainer.datamodule.hparams if trainer.datamodule is not None else {}
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                logger.hparams.update({**data, **pl_module.hparams})
            elif isinstance(logger, CSVLogger):  # its writer keeps them for hparams.yaml, written with the metrics
                logger.log_hyperparams({**data, **pl_module.hparams})

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        population = holds_members(pl_module)
        columns = self._columns(trainer, population)
        differs = ("family", "epochs", "seed", "member") if population else ("family", "epochs", "seed")
        listed = self._session(trainer, pl_module, 0 if population else None)  # a member's: with its index
        for board in self._boards(trainer):
            session = self._session(trainer, pl_module)
            write_session(board, session, columns=columns, differs=differs, listed=listed)

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.state.fn == "test" and not trainer.global_step:  # a test on its own: its own record
            self.on_fit_start(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        stage, _, name = self.monitor.partition("/")
        population, size = holds_members(pl_module), member_count(pl_module)  # no member built: 4 ms each
        each = float(member_nonzero_parameters(pl_module))
        values = {f"hp/{stage}_{metric}": trainer.callback_metrics.get(f"{stage}/{metric}") for metric in self.metrics}
        values["hp/params_nonzero"] = each
        if population:
            values["hp/params_nonzero_population"] = float(pl_module.parameter_counts()["nonzero"])
        callback = trainer.checkpoint_callback
        if callback is not None and callback.best_model_score is not None:
            values[f"hp/best_{stage}_{name}"] = float(callback.best_model_score)
        folder = Path(trainer.log_dir) if trainer.log_dir else None
        member_values, metrics = [], flat_metrics(trainer.callback_metrics) if population else {}
        with written_together():  # a session file a member: one sync for them all
            for index in range(size) if population else ():
                own = {f"hp/{stage}_{metric}": metrics.get(member_key(stage, metric, index)) for metric in self.metrics}
                own["hp/params_nonzero"] = each
                own.update(self._analysis_values(trainer, folder, index))
                member_values.append(own)
                self._write_member(trainer, pl_module, index, own)
        if member_values:  # the population's analysis numbers: the members' mean
            for tag in {tag for own in member_values for tag in own if tag.count("/") > 1}:
                values[tag] = statistics.fmean(own[tag] for own in member_values if tag in own)
        else:
            values.update(self._analysis_values(trainer, folder, None))
        for board in self._boards(trainer):
            write_metrics(board, values, step=trainer.global_step)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        values = {
            f"hp/test_{metric}": float(trainer.callback_metrics[f"test/{metric}"])
            for metric in self.metrics
            if f"test/{metric}" in trainer.callback_metrics
        }
        for board in self._boards(trainer):
            write_metrics(board, values, step=trainer.global_step)
        population = holds_members(pl_module)
        metrics = flat_metrics(trainer.callback_metrics) if population else {}
        with written_together():
            for index in range(pl_module.size) if population else ():
                own = {f"hp/test_{metric}": metrics.get(member_key("test", metric, index)) for metric in self.metrics}
                self._write_member(trainer, pl_module, index, own)

    def _analysis_values(self, trainer: pl.Trainer, folder: Path | None, member: int | None) -> dict[str, float]:
        values: dict[str, float] = {}
        for analysis in _analyses(trainer) if folder is not None else ():
            place = folder / "analysis" / analysis.name
            summary = latest_summary(place / f"member_{member:03d}" if member is not None else place)
            values.update(analysis_values(analysis, summary) if summary else {})
        return values

    def _write_member(self, trainer: pl.Trainer, pl_module: pl.LightningModule, index: int, values: dict) -> None:
        """Member ``index``'s session in ``<run>/member_000/``, …: its hyper-parameters once, then its metrics."""
        if not (trainer.is_global_zero and run_dir(trainer) and self._boards(trainer)):
            return
        folder = Path(run_dir(trainer)) / f"member_{index:03d}"
        started = folder.is_dir() and any(folder.glob("events.out.tfevents.*"))
        with SessionFile(folder) as writer:
            if not started:
                write_session(writer, self._session(trainer, pl_module, index))
            write_metrics(writer, values, step=0)  # a number not there (None) is left out, as NaN is


def _analyses(trainer: pl.Trainer) -> list:
    """The analyses the run's callbacks run (their numbers are HParams columns)."""
    return [
        callback.analysis for callback in trainer.callbacks if isinstance(getattr(callback, "analysis", None), Analysis)
    ]


def flat_hyperparameters(config: Any) -> dict[str, Any]:
    """The run's config as flat ``group.key`` scalars (lists and mappings as JSON text)."""
    flat: dict[str, Any] = {}

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(item, prefix if key == "init_args" else f"{prefix}.{key}" if prefix else key)
        else:
            flat[prefix] = value if isinstance(value, (int, float, str, bool)) else json.dumps(value, default=str)

    for group in ("model", "data", "optimizer", "lr_scheduler", "seed_everything"):
        value = config.get(group)
        if value is not None:
            walk(value.as_dict() if hasattr(value, "as_dict") else value, group)
    return flat
