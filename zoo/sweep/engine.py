"""The one engine behind every sweep: an Optuna study in a storage holds the queue and the record.

A sweep is a study: SQLite in the output folder by default, any SQLAlchemy URL Optuna accepts
(``postgresql://user:password@host/db``) for workers on many machines. A grid's trials are
enqueued once, by the worker that creates the study, as waiting Optuna trials; a search adds
its trials as it samples them. Any number of workers take waiting trials until none is left.
Each trial's rows (every number ``results.csv`` has, analyses included; one row per member of a
batched population) are stored with the trial as user attributes, with the host and run folder
that hold its checkpoints, so ``results.csv``, ``summary.md`` and the figures are rebuilt from
the storage alone.

Faults: a running trial sends a heartbeat; one whose worker stopped sending them (killed, or
its host vanished) is marked failed after the grace period and enqueued again, at most
``RETRIES`` times. A trial that fails by itself (a mistake in one grid value, divergence) is
recorded with its message and not retried unless asked (``--retry-failed``). Ctrl-C or SIGTERM
puts the running trial back in the queue.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import inspect
import io
import json
import math
import os
import signal
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from zoo.errors import EnvironmentFault, Interrupted, ZooError, classify, first_line
from zoo.io import to_jsonable, write_text
from zoo.sweep.spec import Analyses, SweepSpec, Trial

HEARTBEAT = 20  # seconds between a running trial's heartbeats
GRACE = 3  # heartbeats a trial may miss before it is taken for dead
HEARTBEAT_KEY = "heartbeat"  # the study's heartbeat, in seconds: every worker of a study keeps to it
RETRIES = 2  # a trial whose worker vanished runs again at most this many times
HOST = socket.gethostname()


def _pid_namespace() -> str:
    """Which processes ``os.kill(pid, 0)`` can see: containers on one host share its name, not its pids."""
    try:
        return os.readlink("/proc/self/ns/pid").strip("pid:[]")
    except OSError:
        return "?"


PLACE = f"{HOST}/{_pid_namespace()}"  # a worker is PLACE:pid
KEY, ROWS, ERROR, WORKER = "trial", "rows", "error", "worker"  # the user attributes zoo keeps on a trial


def storage_url(output: str | Path, storage: str | None) -> str:
    """The storage a sweep's study lives in: ``storage``, else SQLite in the output folder."""
    return storage or f"sqlite:///{Path(output).resolve() / 'study.db'}"


STORAGE_RECORD = "storage.txt"
"""In a sweep's output folder: where its study lives (``study.db``: the folder's own SQLite), so that the folder
never takes the rows of a second study."""


def check_output(output: Path, storage: str | None) -> None:
    """Refuse an output folder whose study lives in another storage: its trials would all run again into it, and
    its results.csv would be rewritten from the other study."""
    held = _recorded_storage(output)
    if held is not None and held != _storage_record(storage):
        where = "its own study.db (no --storage)" if held == "study.db" else f"--storage {held}"
        raise ZooError(f"{output} holds the rows of the study in {where}; give that, or another --output")


def record_output(output: Path, storage: str | None) -> None:
    """Write down where the folder's study lives, once it opened (a URL that failed is no folder's)."""
    if not (output / STORAGE_RECORD).is_file():
        write_text(output / STORAGE_RECORD, _storage_record(storage) + "\n")


def _storage_record(storage: str | None) -> str:
    return shown(storage) if storage else "study.db"


def _recorded_storage(output: Path) -> str | None:
    record = output / STORAGE_RECORD
    if record.is_file():
        return record.read_text().strip()
    return "study.db" if (output / "study.db").is_file() else None  # a folder from before the record


URL_MISTAKES = ("does not exist", "authentication failed", "Access denied", "Unknown database")
"""What a database server says of a URL that names a database, user or password it does not have (PostgreSQL's,
then MySQL's words): a mistake in the flag (exit 2), not a fault of the machine."""


def open_storage(url: str, heartbeat: int = HEARTBEAT):
    """An ``RDBStorage`` with heartbeats, retrying trials whose worker vanished; one message if unreachable."""
    import optuna
    import sqlalchemy

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # zoo says what a worker does, once
    url = _with_installed_driver(url)
    accepted = inspect.signature(optuna.storages.RDBStorage).parameters
    callback = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in accepted else None
    options: dict[str, Any] = {"heartbeat_interval": heartbeat, "grace_period": GRACE * heartbeat}
    options[callback or "failed_trial_callback"] = run_again
    sqlite = url.startswith("sqlite")
    engine = {"connect_args": {"timeout": 600}} if sqlite else {"pool_pre_ping": True}
    for attempt in range(5):  # workers started together may race to create the tables: the losers try again
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(url, engine_kwargs=engine, **options)
            break
        except ImportError as error:  # the URL's driver (Optuna re-raises its ModuleNotFoundError as ImportError)
            cause = error.__cause__ or error.__context__
            module = getattr(error, "name", None) or getattr(cause, "name", None)
            needed = f"the Python module {module!r}" if module else "a database driver"
            raise EnvironmentFault(
                f"the storage {shown(url)} needs {needed}; install it "
                "(PostgreSQL: pip install psycopg2-binary; MySQL: pip install pymysql with mysql+pymysql://...)"
            ) from None
        except sqlalchemy.exc.ArgumentError as error:  # not a URL at all: nothing to retry
            hint = "; PostgreSQL's scheme is postgresql://" if url.startswith("postgres://") else ""
            raise ZooError(
                f"--storage {shown(url)} is not a database URL ({error}{hint}); e.g. sqlite:////path/study.db or "
                "postgresql://user:password@host/database"
            ) from None
        except (sqlalchemy.exc.SQLAlchemyError, optuna.exceptions.StorageInternalError, ValueError) as error:
            first = first_line(getattr(error, "orig", None) or error)
            if sqlite and "not a database" in first:
                raise ZooError(f"{shown(url)} is not a readable study database ({first})") from None
            if any(mistake in first for mistake in URL_MISTAKES):  # a server that answers, and names what is wrong
                raise ZooError(f"--storage {shown(url)}: the server refused it: {first}") from None
            if attempt == 4 or "unable to open" in first or "could not connect" in first:
                raise EnvironmentFault(f"cannot open the storage {shown(url)}: {first}") from None
            time.sleep(0.5 + attempt)
    if sqlite:
        _serialize_sqlite(storage.engine)
    return storage


def run_again(study, trial) -> None:
    """Enqueue a copy of ``trial``, whose worker vanished, unless it already ran ``RETRIES`` times more."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)  # its name since Optuna 4.9
        (retry or optuna.storages.RetryFailedTrialCallback)(max_retry=RETRIES)(study, trial)


def _with_installed_driver(url: str) -> str:
    """``postgresql://`` with whichever driver is installed (SQLAlchemy 2.1 defaults to psycopg 3)."""
    if not url.startswith("postgresql://"):
        return url
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return "postgresql+psycopg2://" + url.removeprefix("postgresql://")
    return url


def _serialize_sqlite(engine) -> None:
    """Make each SQLite transaction take the write lock when it begins.

    Python's sqlite3 runs a read outside any transaction, so Optuna's "take a waiting trial"
    (read its state, then write RUNNING) lets two processes take the same trial. ``BEGIN
    IMMEDIATE`` makes the read and the write one step; the others wait for the lock.
    """
    from sqlalchemy import event

    engine.dispose()

    @event.listens_for(engine, "connect")
    def _manual_transactions(connection, record) -> None:
        connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def shown(url: str) -> str:
    """The URL without its password."""
    head, at, tail = url.rpartition("@")
    if not at or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    return f"{scheme}://{credentials.split(':')[0]}:***@{tail}"


def definition(spec: SweepSpec, kind: str) -> dict[str, Any]:
    """What decides a study's rows: one study holds rows of one definition only.

    Not in it: ``output`` (each host has its own), ``figures`` (the report's choice) and the
    number of search trials (a search may be extended).
    """
    configs = [entry.config for entry in spec.trials] if kind == "grid" else [spec.search.config]
    what: dict[str, Any] = {"kind": kind, "common": spec.common, "analyses": to_jsonable(spec.analyses.settings())}
    if kind == "grid":
        what.update(seeds=spec.seeds, batch_seeds=spec.batch_seeds, trials=[to_jsonable(t) for t in spec.trials])
    else:
        what["search"] = {k: v for k, v in to_jsonable(spec.search).items() if k not in ("trials", "storage")}
    what["config files"] = {path: hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16] for path in configs}
    return json.loads(json.dumps(what, sort_keys=True))


def difference(held: Any, given: Any, where: str = "") -> str | None:
    """The first place two definitions differ, as a reader would name it; ``None`` if equal."""
    if isinstance(held, dict) and isinstance(given, dict):
        for key in sorted(set(held) | set(given)):
            inner = f"{where}.{key}" if where else key
            if key not in held:
                return f"{inner} is new ({json.dumps(given[key])})"
            if key not in given:
                return f"{inner} was removed (it was {json.dumps(held[key])})"
            found = difference(held[key], given[key], inner)
            if found:
                return found
        return None
    if isinstance(held, list) and isinstance(given, list) and len(held) == len(given):
        for index, (a, b) in enumerate(zip(held, given), start=1):
            found = difference(a, b, f"{where}[{index}]")
            if found:
                return found
        return None
    if held != given:
        if where.startswith("config files."):
            return f"the file {where.removeprefix('config files.')} changed since the study began"
        return f"{where}: {json.dumps(held)} in the study, {json.dumps(given)} now"
    return None


def open_study(storage, name: str, what: dict[str, Any], direction: str, trials: list[Trial] | None = None):
    """The study ``name``: created (and, for a grid, filled with its trials) by the first worker.

    A study whose definition differs from ``what`` is refused with what changed: rows of two
    definitions are never mixed. So is a worker whose heartbeat differs from the study's: one that
    expects beats more often than the others send them would take their running trials for dead.
    """
    import optuna

    try:
        study = optuna.create_study(study_name=name, storage=storage, direction=direction)
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage)
        return _checked(study, what)
    study.set_user_attr(HEARTBEAT_KEY, storage.get_heartbeat_interval())
    study.set_user_attr("definition", what)
    if trials:
        _enqueue(study, trials)
    study.set_user_attr("ready", True)
    return study


def name_objective(study, name: str) -> None:
    """What a trial's value is, for the dashboard ("Objective 0" otherwise): a grid's is its test metric, a
    search's the validation metric it optimizes."""
    import optuna

    if study.metric_names != [name]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([name])


def _checked(study, what: dict[str, Any]):
    deadline = time.monotonic() + 120
    while not study.user_attrs.get("ready"):  # its first worker is still enqueueing the trials
        if time.monotonic() > deadline:
            raise ZooError(
                f"study {study.study_name!r} was created but never filled (its first worker stopped early); "
                "give another --study name, or delete it: optuna delete-study --study-name NAME --storage URL"
            )
        time.sleep(0.5)
    theirs, mine = study.user_attrs.get(HEARTBEAT_KEY), study._storage.get_heartbeat_interval()
    if theirs is not None and theirs != mine:
        raise ZooError(
            f"study {study.study_name!r}: its workers send a heartbeat every {theirs} s, and this worker's "
            f"--heartbeat is {mine} s: it would take their running trials for dead; give --heartbeat {theirs}"
        )
    changed = difference(study.user_attrs.get("definition"), what)
    if changed:
        raise ZooError(
            f"study {study.study_name!r} in this storage was made from other settings, of its sweep file or the "
            f"config files it names ({changed}); its rows would mix with these: give another output folder or "
            "--study name, or restore the file"
        )
    return study


def _enqueue(study, trials: list[Trial]) -> None:
    """A grid's trials as waiting Optuna trials; their overrides as categorical parameters, for the dashboard."""
    import optuna

    choices: dict[str, list[str]] = {}
    for trial in trials:
        for name, value in grid_params(trial).items():
            choices.setdefault(name, [])
            if value not in choices[name]:
                choices[name].append(value)
    distributions = {name: optuna.distributions.CategoricalDistribution(values) for name, values in choices.items()}
    for trial in trials:
        params = grid_params(trial)
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=params,
                distributions={name: distributions[name] for name in params},
                user_attrs={KEY: trial.id},
            )
        )


def grid_params(trial: Trial) -> dict[str, str]:
    """A trial's family, overrides and seed(s) as Optuna parameters (text: Optuna's choices are scalars)."""
    seeds = str(trial.seeds[0]) if len(trial.seeds) == 1 else f"{trial.seeds[0]}-{trial.seeds[-1]}"
    overrides = {key: value if isinstance(value, str) else json.dumps(value) for key, value in trial.overrides.items()}
    return {"config": trial.family or Path(trial.config).stem, **overrides, "seed": seeds}


@dataclasses.dataclass
class Outcome:
    """What one worker did, for its closing lines."""

    done: int = 0
    failed: list[str] = dataclasses.field(default_factory=list)


class Worker:
    """Takes waiting trials of one study and runs them until none is waiting or running."""

    def __init__(self, study, *, analyses: Analyses, threads: int, devices: str, say: Callable[[str], None]):
        self.study, self.analyses, self.threads, self.devices, self.say = study, analyses, threads, devices, say
        self.storage = study._storage

    @property
    def worst(self) -> float:
        """The objective of a trial whose metric is not a number: last in the study's order, never a made-up 0."""
        import optuna

        return -math.inf if self.study.direction == optuna.study.StudyDirection.MAXIMIZE else math.inf

    def run(
        self,
        take: Callable[[], tuple[Any, Trial, str] | None],
        value_of: Callable[[list[dict]], float],
        give_up_after: int | None = None,
    ) -> Outcome:
        """``take()`` gives (Optuna trial, zoo trial, label) or ``None`` when nothing is waiting."""
        import optuna

        outcome, in_a_row, waited = Outcome(), [], False
        while True:
            self.fail_stale()
            taken = take()
            if taken is None:
                running = self.storage.get_n_trials(self.study._study_id, optuna.trial.TrialState.RUNNING)
                if not running:
                    return outcome
                if not waited:
                    self.say(
                        f"waiting: {running} trial(s) run on other workers; one whose worker stops is taken "
                        f"again here after {GRACE * self.storage.get_heartbeat_interval()} s without heartbeat"
                    )
                    waited = True
                time.sleep(min(self.storage.get_heartbeat_interval(), 2))  # a prompt end when the last one finishes
                continue
            waited = False
            optuna_trial, trial, label = taken
            status, message = self.execute(optuna_trial, trial, value_of)
            self.say(f"{label}: {message}")
            if status == "done":
                outcome.done += 1
                in_a_row = []
            else:
                outcome.failed.append(f"{trial.id}: {message}")
                in_a_row.append(message.removeprefix("failed, "))
                if give_up_after and len(in_a_row) >= give_up_after:
                    raise ZooError(
                        f"{len(in_a_row)} trials in a row failed, so the search stops; the first: {in_a_row[0]}"
                    )

    def execute(self, optuna_trial, trial: Trial, value_of: Callable[[list[dict]], float]) -> tuple[str, str]:
        """Run one taken trial with a heartbeat, and record its rows or its failure in the storage."""
        from zoo.sweep.trial import run_trial

        trial_id = optuna_trial._trial_id
        self.storage.set_trial_user_attr(trial_id, WORKER, f"{PLACE}:{os.getpid()}")
        started, asked = time.perf_counter(), []
        try:
            with _heartbeat(self.storage, trial_id), _tee_stderr() as errors, _stops_kept(asked):
                rows = run_trial(trial, self.analyses, self.threads, self.devices)
            if asked:  # a stop that something inside the trial caught and carried on from
                raise asked[0]
        except (KeyboardInterrupt, SystemExit, Interrupted) as error:
            stopped = _stopped(error) or (asked[0] if asked else None)
            message = _last_error(errors.getvalue()) or f"exit code {getattr(error, 'code', None)}"
            if stopped is None and getattr(error, "code", None) == EnvironmentFault.exit_code:
                stopped = EnvironmentFault(message)  # this machine's fault, not the trial's: another may run it
            if stopped is None:  # the CLI's exit for a mistake in the trial's settings: its message was printed
                return self.failed(trial_id, message)
            self.give_back(trial_id)
            raise stopped from None
        except Exception as error:  # a failing trial must not end the worker
            if asked:  # the stop came back as another exception: still a stop, not the trial's failure
                self.give_back(trial_id)
                raise asked[0] from None
            failure = classify(error)
            if isinstance(failure, EnvironmentFault):  # this machine's fault: the trial waits for a worker that can
                self.give_back(trial_id)
                raise failure from None
            message = str(failure) if failure else f"{type(error).__name__}: {error} (a bug in zoo?)"
            return self.failed(trial_id, message, None if failure else traceback.format_exc())
        for row in rows:
            row["host"], row["run_dir"] = HOST, str(Path(row["run_dir"]).resolve())
        value = value_of(rows)
        try:
            self.storage.set_trial_user_attr(trial_id, ROWS, to_jsonable(rows))
            for key, number in _headline_numbers(rows).items():
                self.storage.set_trial_user_attr(trial_id, key, number)
            self.storage.set_trial_state_values(trial_id, _complete(), [value if math.isfinite(value) else self.worst])
        except Exception as error:
            if type(error).__name__ != "UpdateFinishedTrialError":
                raise
            return "lost", "taken for dead (no heartbeat) while it ran; it runs again, these rows are not kept"
        metric = rows[0]["metric"]
        members = " (mean of the members)" if len(rows) > 1 else ""
        test = mean(row.get(f"test_{metric}") for row in rows)
        return "done", f"test/{metric} {test:.4f}{members}, {_duration(started)}"

    def failed(self, trial_id: int, message: str, details: str | None = None) -> tuple[str, str]:
        import optuna

        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.storage.set_trial_user_attr(trial_id, ERROR, message)
            if details:
                self.storage.set_trial_user_attr(trial_id, "traceback", details)
            self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.FAIL)
        return "failed", f"failed, {message}"

    def give_back(self, trial_id: int) -> None:
        """An interrupted trial waits again for a worker (this one, rerun, or another)."""
        import optuna

        with contextlib.suppress(Exception):
            self.storage.set_trial_state_values(trial_id, optuna.trial.TrialState.WAITING)

    def fail_stale(self) -> None:
        """Fail (and enqueue again) the trials whose worker stopped: no heartbeat, or a process here that is gone.

        The second needs no grace period: a worker restarted on the machine of a killed one takes
        the killed one's trial again at once. A trial whose worker died between taking it and its
        first heartbeat has no heartbeat to miss: without a worker's name after the grace period,
        it is failed too (else every worker waited for it forever).
        """
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(self.study)
        running = self.storage.get_all_trials(self.study._study_id, states=(optuna.trial.TrialState.RUNNING,))
        grace = GRACE * self.storage.get_heartbeat_interval()
        for trial in running:
            place, _, pid = str(trial.user_attrs.get(WORKER, "")).rpartition(":")
            gone = place == PLACE and "?" not in place and pid.isdigit() and not _alive(int(pid))
            started = trial.datetime_start
            unclaimed = WORKER not in trial.user_attrs and started is not None  # Optuna's times are local
            if gone or (unclaimed and (datetime.now() - started).total_seconds() > grace):
                with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
                    if self.storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL):
                        run_again(self.study, self.storage.get_trial(trial._trial_id))


def take_waiting(study) -> Any | None:
    """The first waiting trial, now running here; ``None`` if none is waiting."""
    import optuna

    storage = study._storage
    for frozen in storage.get_all_trials(study._study_id, states=(optuna.trial.TrialState.WAITING,)):
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            if storage.set_trial_state_values(frozen._trial_id, optuna.trial.TrialState.RUNNING):
                storage.record_heartbeat(frozen._trial_id)
                return optuna.Trial(study, frozen._trial_id)
    return None


def trials_of(study, states: tuple | None = None) -> list:
    """The study's trials; a record that is no longer valid JSON (edited, truncated) is one message."""
    try:
        return study.get_trials(deepcopy=False, states=states)
    except ValueError as error:  # json.JSONDecodeError
        raise ZooError(
            f"study {study.study_name!r}: a trial's record in the storage is not valid JSON ({error}); "
            "was the database edited or truncated? Restore it, or start a new study"
        ) from None


def read_record(study) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of every finished trial, in the study's order, and what could not be read (never a traceback).

    A trial run again after its worker vanished has the same key: its first complete record counts.
    """
    import optuna

    rows: list[dict[str, Any]] = []
    problems, seen = [], set()
    for trial in trials_of(study, (optuna.trial.TrialState.COMPLETE,)):
        key = trial.user_attrs.get(KEY, f"#{trial.number}")
        if key in seen:
            continue
        record = trial.user_attrs.get(ROWS)
        if not isinstance(record, list) or not all(isinstance(row, dict) and "trial" in row for row in record):
            problems.append(f"trial {trial.number} ({key}): its rows are unreadable; not in the report")
            continue
        seen.add(key)
        rows += record
    return rows, problems


def failures(study) -> dict[str, str]:
    """Each trial key that failed and has not finished since, with its last message."""
    import optuna

    states, finished, failed = optuna.trial.TrialState, set(), {}
    for trial in trials_of(study):
        key = trial.user_attrs.get(KEY)
        if trial.state in (
            optuna.trial.TrialState.COMPLETE,
            optuna.trial.TrialState.WAITING,
            optuna.trial.TrialState.RUNNING,
        ):
            finished.add(key)
        elif trial.state == states.FAIL:
            failed[key] = trial.user_attrs.get(ERROR) or "its worker stopped (no heartbeat) too often"
    return {key: message for key, message in failed.items() if key not in finished}


def retry_failed(study, keys: list[str]) -> int:
    """Enqueue once more each failed trial named in ``keys`` (after what failed was fixed)."""
    import optuna

    latest = {}
    for trial in trials_of(study, (optuna.trial.TrialState.FAIL,)):
        latest[trial.user_attrs.get(KEY)] = trial
    for key in keys:
        trial = latest[key]
        study.add_trial(
            optuna.trial.create_trial(
                state=optuna.trial.TrialState.WAITING,
                params=trial.params,
                distributions=trial.distributions,
                user_attrs={KEY: key},
            )
        )
    return len(keys)


@contextlib.contextmanager
def _heartbeat(storage, trial_id: int) -> Iterator[None]:
    """Record the trial's heartbeat every interval while it runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(storage.get_heartbeat_interval()):
            with contextlib.suppress(Exception):  # a missed beat is what the grace period is for
                storage.record_heartbeat(trial_id)

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


CTRL_C_AGAIN = 1.0  # seconds between a remembered Ctrl-C and its repeat, while the trial has not ended


@contextlib.contextmanager
def _stops_kept(asked: list[Interrupted]) -> Iterator[None]:
    """Ctrl-C and SIGTERM during a trial, remembered in ``asked`` as well as raised.

    Python raises a signal wherever the main thread is: inside a library's bare ``except:``, or
    a weakref callback or finalizer (whose exceptions Python only prints, "Exception ignored in"),
    the stop is swallowed and the trial runs on as if no one had asked. What is remembered here
    ends the trial after it all the same, and such a swallowed stop prints nothing. A Ctrl-C is
    also delivered again every second until the trial has ended, so a swallowed one stops it
    promptly (Lightning ignores Ctrl-C while it shuts down, so a repeat cannot cut that short);
    a swallowed SIGTERM needs no repeat: Lightning's own flag stops training at the next step.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread receives signals
        yield
        return
    ended, sending = threading.Event(), threading.Lock()
    closing: list[bool] = []  # set first thing as the block ends, before anything a signal could interrupt

    def again(signum: int) -> None:
        if not ended.wait(CTRL_C_AGAIN):
            with sending:  # never once the trial has ended: a Ctrl-C then would land in the worker's exit
                if not ended.is_set():
                    os.kill(os.getpid(), signum)

    def keeping(signum: int, stop: Interrupted) -> Callable:
        previous = signal.getsignal(signum)

        def handler(number: int, frame: Any) -> None:
            asked.append(stop)
            if closing:  # a repeat sent as the trial ended: remembered, the trial is over already
                return
            if number == signal.SIGINT:
                threading.Thread(target=again, args=(number,), daemon=True).start()
            if callable(previous):
                previous(number, frame)
            else:
                raise stop

        return handler

    def unraisable(failure: Any) -> None:
        if not (asked and isinstance(failure.exc_value, (KeyboardInterrupt, Interrupted))):
            printing(failure)

    stops = {signal.SIGINT: Interrupted("interrupted", 130), signal.SIGTERM: Interrupted("stopped by SIGTERM", 143)}
    previous = {signum: signal.signal(signum, keeping(signum, stop)) for signum, stop in stops.items()}
    printing, sys.unraisablehook = sys.unraisablehook, unraisable
    try:
        yield
    finally:
        closing.append(True)
        with sending:
            ended.set()  # no repeat from now on; one sent before is handled above, the handlers still in place
        sys.unraisablehook = printing
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Tee(io.TextIOBase):
    def __init__(self, stream) -> None:
        self.stream, self.buffer_ = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.buffer_.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def getvalue(self) -> str:
        return self.buffer_.getvalue()


@contextlib.contextmanager
def _tee_stderr() -> Iterator[_Tee]:
    """Stderr as usual, also kept: the CLI prints a trial's mistake there before it exits."""
    tee = _Tee(sys.stderr)
    with contextlib.redirect_stderr(tee):
        yield tee


def _last_error(text: str) -> str | None:
    lines = [line.removeprefix("zoo: error: ") for line in text.splitlines() if line.startswith("zoo: error: ")]
    return lines[-1] if lines else None


def _stopped(error: BaseException) -> Interrupted | None:
    """The interruption behind ``error`` (Ctrl-C, SIGTERM), or ``None`` for the CLI's exit on a mistake."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:  # Lightning turns both into a SystemExit of its own
        seen.add(id(error))
        if isinstance(error, Interrupted):
            return error
        if isinstance(error, KeyboardInterrupt):
            return Interrupted("interrupted", 130)
        if type(error).__name__ == "SIGTERMException":
            return Interrupted("stopped by SIGTERM", 143)
        error = error.__cause__ or error.__context__
    return None


def _complete():
    import optuna

    return optuna.trial.TrialState.COMPLETE


def _headline_numbers(rows: list[dict]) -> dict[str, float]:
    """The row's numbers as user attributes, for the dashboard: a batch's are means over its members."""
    keys = [key for key, value in rows[0].items() if isinstance(value, (int, float)) and not isinstance(value, bool)]
    numbers = {key: mean(row.get(key) for row in rows) for key in keys if key not in ("seed", "member")}
    return {key: value for key, value in numbers.items() if math.isfinite(value)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mean(values) -> float:
    numbers = [float(value) for value in values if value not in (None, "")]
    return sum(numbers) / len(numbers) if numbers else float("nan")


def _duration(started: float) -> str:
    seconds = time.perf_counter() - started
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"
