"""The sweep engine on real storages: SQLite in the output folder and a real PostgreSQL server (pgserver).

Several worker processes on one study share its trials, none lost, none run twice; a worker
killed mid-trial has its trial taken again by another; a host that vanishes (no heartbeat)
likewise; the report from the storage alone equals what the workers wrote.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import CONFIGS, ROOT

from zoo.errors import EnvironmentFault, ZooError, ZooFailure
from zoo.sweep import engine, read_results
from zoo.sweep.spec import Trial, expand, read_sweep

HEARTBEAT = "1"  # seconds: a dead worker's trial is taken again after 3 s


@pytest.fixture(scope="session")
def postgresql(tmp_path_factory) -> str:
    """A real PostgreSQL server for the session, in a scratch folder; its URL."""
    pgserver = pytest.importorskip("pgserver", reason="pgserver (part of the dev extra) bundles PostgreSQL")
    folder = Path(tempfile.mkdtemp(prefix="zoo-postgresql-"))
    folder.chmod(0o755)  # run as root, pgserver runs the server as its own user, who must reach the folder
    server = pgserver.get_server(folder / "data", cleanup_mode="stop")
    yield server.get_uri()
    server.cleanup()
    shutil.rmtree(folder, ignore_errors=True)


def grid_file(tmp_path: Path, name: str, epochs: int = 2, **extra) -> Path:
    """Six iris trials: three widths x two seeds."""
    spec = {
        "output": str(tmp_path / name),
        "seeds": [0, 1],
        "common": {"trainer.max_epochs": epochs},
        "trials": [{"config": str(CONFIGS / "iris.yaml"), "grid": {"model.init_args.hidden": [[4], [8], [16]]}}],
        **extra,
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_py(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, str(ROOT / "scripts" / "sweep.py"), *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def worker(sweep: Path, *extra: str) -> subprocess.Popen:
    return sweep_py(str(sweep), "--heartbeat", HEARTBEAT, *extra)


def load(url: str, name: str) -> optuna.Study:
    deadline = time.monotonic() + 120
    while True:
        try:
            study = optuna.load_study(study_name=name, storage=engine.open_storage(url))
            if study.user_attrs.get("ready"):
                return study
        except (KeyError, ZooFailure):  # no folder, no tables or no study yet
            pass
        assert time.monotonic() < deadline, "no worker made the study"
        time.sleep(0.1)


def running_on(study: optuna.Study, pid: int) -> optuna.trial.FrozenTrial | None:
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if str(trial.user_attrs.get(engine.WORKER, "")).endswith(f":{pid}"):
            return trial
    return None


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_three_workers_share_one_study_and_survive_a_killed_one(tmp_path, request, kind):
    """Three workers on one study of six trials, one SIGKILLed mid-trial: six rows, each trial once."""
    name = f"grid_{kind}"
    sweep = grid_file(tmp_path, name)
    output = tmp_path / name
    url = request.getfixturevalue("postgresql") if kind == "postgresql" else engine.storage_url(output, None)
    storage = ["--storage", url] if kind == "postgresql" else []
    workers = [worker(sweep, *storage) for _ in range(3)]
    study = load(url, name)
    deadline = time.monotonic() + 120
    while (killed := running_on(study, workers[0].pid)) is None:
        assert time.monotonic() < deadline and workers[0].poll() is None, "the first worker never ran a trial"
        time.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)
    assert workers[0].wait(timeout=30) == -signal.SIGKILL
    for process in workers[1:]:
        out, error = process.communicate(timeout=300)
        assert process.returncode == 0, error
    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [trial for trial in trials if trial.state == states.COMPLETE]
    keys = sorted(trial.user_attrs[engine.KEY] for trial in complete)
    assert keys == sorted(trial.id for trial in expand(read_sweep(sweep), "")), "lost or duplicated"
    assert {trial.state for trial in trials} == {states.COMPLETE, states.FAIL}  # nothing left waiting or running
    again = next(trial for trial in complete if trial.user_attrs[engine.KEY] == killed.user_attrs[engine.KEY])
    assert not again.user_attrs[engine.WORKER].endswith(f":{workers[0].pid}")  # completed by another worker
    rows = engine.read_record(study)[0]
    assert len(rows) == 6 and len({row["trial"] for row in rows}) == 6
    for row in rows:
        assert (Path(row["run_dir"]) / "checkpoints" / "best.ckpt").is_file() and row["host"] == engine.HOST

    written = read_results(output)  # by the last worker to finish
    report = sweep_py("report", str(tmp_path / "report"), "--storage", url, "--study", name)
    assert report.wait(timeout=120) == 0, report.stderr.read()
    assert len(written) == 6 and read_results(tmp_path / "report") == written


def test_a_vanished_hosts_trial_runs_again_after_the_grace_period(tmp_path):
    """A trial held by a worker on another machine that stopped sending heartbeats is failed and retried."""
    sweep = grid_file(tmp_path, "vanished", epochs=1, seeds=[0])
    output = tmp_path / "vanished"
    first = worker(sweep)  # makes the study; its trials are taken before the vanished host's
    study = load(engine.storage_url(output, None), "vanished")
    first.kill()
    first.wait()
    study = optuna.load_study(study_name="vanished", storage=engine.open_storage(engine.storage_url(output, None), 1))
    taken = engine.take_waiting(study)  # as a worker on another machine
    study._storage.set_trial_user_attr(taken._trial_id, engine.WORKER, "elsewhere/1:4242")
    second = worker(sweep)
    with engine._heartbeat(study._storage, taken._trial_id):  # alive until the second worker runs a trial
        lines = [second.stdout.readline()]
        while not lines[-1].startswith("trial ") and lines[-1]:
            lines.append(second.stdout.readline())
    vanished = datetime.now()  # then the machine vanishes (Optuna's times are local)
    out, error = second.communicate(timeout=300)
    assert second.returncode == 0, error
    attempts = [trial for trial in study.get_trials() if trial.user_attrs[engine.KEY] == taken.user_attrs["trial"]]
    assert [trial.state for trial in attempts] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert engine.ERROR not in attempts[0].user_attrs  # failed for its silence, not by itself
    assert (attempts[1].datetime_start - vanished).total_seconds() >= 2  # the grace period from its last beat
    assert len(engine.read_record(study)[0]) == 3


def test_a_worker_after_the_end_says_so_and_a_changed_file_is_refused(tmp_path):
    sweep = grid_file(tmp_path, "ended", epochs=1, seeds=[0])
    assert worker(sweep).wait(timeout=300) == 0
    late = worker(sweep)
    out, error = late.communicate(timeout=120)
    assert late.returncode == 0, error
    assert "the study is done" in out and "trial 1/3" not in out
    study = optuna.load_study(study_name="ended", storage=engine.storage_url(tmp_path / "ended", None))
    assert study.metric_names == ["test metric (accuracy or R²), mean over the trial's seeds"]  # the dashboard's
    sweep.write_text(sweep.read_text().replace("max_epochs: 1", "max_epochs: 3"))
    changed = worker(sweep)
    out, error = changed.communicate(timeout=120)
    assert changed.returncode == 2
    assert "common.trainer.max_epochs: 1 in the study, 3 now" in error and "Traceback" not in error


def test_values_reach_the_trial_as_typed_and_runs_stay_in_the_output(tmp_path, monkeypatch):
    """Text in a grid reaches the CLI without JSON quotes; a run folder never leaves <output>/runs."""
    monkeypatch.chdir(ROOT)
    trial = Trial("configs/iris.yaml", {"model.init_args.activation": "tanh", "data.data_dir": "/a b"}, (0,), "out")
    assert "--model.init_args.activation=tanh" in trial.arguments() and "--data.data_dir=/a b" in trial.arguments()
    assert trial.arguments()[-1] == "--trainer.logger.init_args.version=null"
    escape = {"trainer.logger.init_args.version": ["../../escape"]}
    with pytest.raises(Exception, match=r"grid.trainer.logger.init_args.version: a sweep puts each trial's run"):
        read_sweep(grid_file(tmp_path, "escape", trials=[{"config": "configs/iris.yaml", "grid": escape}]))


def test_a_misspelt_key_is_found_before_anything_runs(tmp_path):
    misspelt = [{"config": str(CONFIGS / "iris.yaml"), "grid": {"model.init_args.hiden": [[8]]}}]
    process = worker(grid_file(tmp_path, "misspelt", trials=misspelt))
    out, error = process.communicate(timeout=120)
    assert process.returncode == 2 and "FCNet has no option 'hiden' (did you mean 'hidden'?)" in error
    assert not (tmp_path / "misspelt").exists()  # not even the copy of the sweep file, or its folder
    zero = [{"config": str(CONFIGS / "iris.yaml"), "grid": {"optimizer.init_args.lr": [0.0]}}]  # zoo's own check
    process = worker(grid_file(tmp_path, "zero", trials=zero))
    out, error = process.communicate(timeout=120)
    assert process.returncode == 2 and "optimizer.init_args.lr must be a positive number, got 0.0" in error
    assert not (tmp_path / "zero").exists()


def test_a_workers_bad_devices_are_refused_before_it_takes_a_trial(tmp_path):
    """Else every trial it took would fail with the trainer's words, and a shared study's queue with them."""
    process = worker(grid_file(tmp_path, "devices"), "--devices", "foo")
    out, error = process.communicate(timeout=120)
    assert process.returncode == 2, error
    assert error.strip().splitlines()[-1].startswith("sweep: error: --devices foo: `devices` selected with")
    assert not (tmp_path / "devices").exists()  # no study, no trial marked failed


def test_a_storage_that_is_no_url_is_a_mistake():
    with pytest.raises(ZooError, match="--storage foo is not a database URL"):
        engine.open_storage("foo")
    with pytest.raises(ZooError, match="PostgreSQL's scheme is postgresql://"):
        engine.open_storage("postgres://user:secret@localhost/zoo")


def test_a_report_of_a_storage_with_several_studies_asks_which(tmp_path):
    url = engine.storage_url(tmp_path, None)
    for name in ("first", "second"):
        engine.open_study(engine.open_storage(url), name, {"trials": 1}, "maximize")
    process = sweep_py("report", "--storage", url)
    assert process.wait(timeout=120) == 2
    assert process.stderr.read().strip().endswith("holds 2 studies: first, second; give --study NAME")


def test_a_storage_whose_driver_is_missing_names_the_module():
    """Optuna re-raises the driver's ModuleNotFoundError as a plain ImportError: still one line, exit 4."""
    with pytest.raises(EnvironmentFault, match=r"needs the Python module 'MySQLdb'; install it") as raised:
        engine.open_storage("mysql://user:secret@localhost/zoo")
    assert raised.value.exit_code == 4 and "secret" not in str(raised.value)


def test_an_output_that_is_a_file_is_a_mistake(tmp_path):
    (tmp_path / "taken").write_text("")
    process = worker(grid_file(tmp_path, "taken"))
    assert process.wait(timeout=120) == 2 and "is a file" in process.stderr.read()


def test_a_corrupt_study_never_tracebacks(tmp_path):
    folder = tmp_path / "corrupt"
    folder.mkdir()
    (folder / "study.db").write_bytes(b"SQLite format 3\x00" + b"\x07" * 300)
    report = sweep_py("report", str(folder))
    error = report.communicate(timeout=120)[1]
    assert report.returncode == 2 and "Traceback" not in error, error
    assert "study.db is not a readable study database" in error


def test_a_search_whose_trials_always_fail_stops(tmp_path):
    spec = {
        "output": str(tmp_path / "hopeless"),
        "common": {"trainer.max_epochs": 1, "model.init_args.hidden": [0]},
        "search": {
            "config": str(CONFIGS / "iris.yaml"),
            "trials": 50,
            "space": {"optimizer.init_args.lr": {"float": [1.0e-3, 1.0e-2], "log": True}},
        },
    }
    path = tmp_path / "hopeless.yaml"
    path.write_text(yaml.safe_dump(spec))
    process = worker(path, "--search")
    out, error = process.communicate(timeout=300)
    assert process.returncode == 2
    assert "5 trials in a row failed, so the search stops; the first: model.hidden must be positive" in error


@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stopped_worker_leaves_its_trial_waiting_and_says_how_to_resume(tmp_path, stop, code):
    sweep = grid_file(tmp_path, "stopped", epochs=1000, seeds=[0])  # still training when stopped
    process = worker(sweep)
    study = load(engine.storage_url(tmp_path / "stopped", None), "stopped")
    deadline = time.monotonic() + 120
    while running_on(study, process.pid) is None:
        assert time.monotonic() < deadline and process.poll() is None, "the worker never ran a trial"
        time.sleep(0.05)
    time.sleep(1)  # into the training
    process.send_signal(stop)
    out, error = process.communicate(timeout=120)
    assert process.returncode == code, error
    assert f"its running trial waits again: resume with python {ROOT / 'scripts' / 'sweep.py'} {sweep}" in error
    assert "Traceback" not in error
    assert {trial.state for trial in study.get_trials()} == {optuna.trial.TrialState.WAITING}


class _Finalized:
    pass


@pytest.mark.parametrize("swallowed_by", ["a bare except", "a weakref callback"])
@pytest.mark.parametrize(("stop", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_swallowed_inside_a_trial_still_stops_the_worker(tmp_path, monkeypatch, capfd, stop, code, swallowed_by):
    """What a trial runs may swallow the KeyboardInterrupt (a library's bare ``except:``; Python itself, in a
    weakref callback or finalizer, where it only prints "Exception ignored"): the worker stops all the same."""
    import weakref

    import zoo.sweep.trial
    from zoo.sweep.run import run_sweep

    def signalled(_=None) -> None:
        os.kill(os.getpid(), stop)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # the handler runs here, at the latest
            pass

    def swallowing(*args, **kwargs):
        if swallowed_by == "a bare except":
            try:
                signalled()
            except BaseException:  # noqa: B036 (the library this stands for)
                pass
        else:
            finalized = _Finalized()
            reference = weakref.ref(finalized, signalled)
            del finalized  # the callback runs now; what it raises, Python prints and drops
            assert reference() is None
        return [{"run_dir": str(tmp_path), "metric": "acc", "test_acc": 1.0}]  # rows that must not be recorded

    monkeypatch.setattr(zoo.sweep.trial, "run_trial", swallowing)
    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # Python's own, which prints (not pytest's)
    before = signal.getsignal(signal.SIGINT), sys.unraisablehook
    spec = read_sweep(grid_file(tmp_path, "swallowed", seeds=[0]))
    with pytest.raises(ZooFailure) as stopped:
        run_sweep(spec, tmp_path / "swallowed", say=lambda line: None)
    assert stopped.value.exit_code == code
    study = load(engine.storage_url(tmp_path / "swallowed", None), "swallowed")
    assert {trial.state for trial in study.get_trials()} == {optuna.trial.TrialState.WAITING}
    assert (signal.getsignal(signal.SIGINT), sys.unraisablehook) == before  # as they were
    assert "Exception ignored" not in capfd.readouterr().err  # a stop kept is no error to print


@pytest.fixture
def ctrl_c_raises():
    """Python's own Ctrl-C handler, whatever pytest was started with: a shell starts a background job with
    Ctrl-C ignored, and a trial under an ignored Ctrl-C is stopped at once instead of swallowing it."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_swallowed_ctrl_c_is_delivered_again_until_the_trial_stops(tmp_path, monkeypatch):
    """A trial that eats the first KeyboardInterrupt and trains on is stopped by the repeat, not at its end."""
    import zoo.sweep.trial
    from zoo.sweep.run import run_sweep

    interrupts = []

    def training_on(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        except KeyboardInterrupt:  # the library that eats it
            interrupts.append(time.monotonic())
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:  # training on, as if no one had asked
                time.sleep(0.01)
        except KeyboardInterrupt:
            interrupts.append(time.monotonic())
            raise
        return [{"run_dir": str(tmp_path), "metric": "acc", "test_acc": 1.0}]

    monkeypatch.setattr(zoo.sweep.trial, "run_trial", training_on)
    spec = read_sweep(grid_file(tmp_path, "again", seeds=[0]))
    with pytest.raises(ZooFailure) as stopped:
        run_sweep(spec, tmp_path / "again", say=lambda line: None)
    assert stopped.value.exit_code == 130 and len(interrupts) == 2
    assert 0.5 < interrupts[1] - interrupts[0] < 10  # the repeat, about a second later, not the trial's end
    study = load(engine.storage_url(tmp_path / "again", None), "again")
    assert {trial.state for trial in study.get_trials()} == {optuna.trial.TrialState.WAITING}


@pytest.mark.usefixtures("ctrl_c_raises")
def test_no_ctrl_c_repeat_lands_after_the_trial_has_ended(monkeypatch):
    """Repeats come every 5 ms here and take 30 ms to send, so one is under way when the trial ends: none may
    reach what comes after (the worker's exit, where a KeyboardInterrupt could hang the interpreter's shutdown)."""
    monkeypatch.setattr(engine, "CTRL_C_AGAIN", 0.005)
    kill = os.kill

    def descheduled_kill(pid: int, signum: int) -> None:  # the repeat's thread paused between deciding and sending
        time.sleep(0.03)
        kill(pid, signum)

    monkeypatch.setattr(os, "kill", descheduled_kill)
    before = signal.getsignal(signal.SIGINT)
    for _ in range(20):
        asked: list = []
        try:
            with engine._stops_kept(asked):
                deadline = time.monotonic() + 0.2
                while time.monotonic() < deadline:  # a trial that swallows every Ctrl-C: the repeats keep coming
                    try:
                        if not asked:
                            os.kill(os.getpid(), signal.SIGINT)
                        time.sleep(0.001)
                    except KeyboardInterrupt:
                        pass
        except KeyboardInterrupt:
            pass  # one at the block's edge is still the trial's (the worker takes it as the stop it is)
        try:
            time.sleep(0.05)  # a repeat sent as the block ended would be raised here
        except KeyboardInterrupt:
            pytest.fail("a Ctrl-C repeat arrived after the trial had ended")
        assert len(asked) >= 2 and signal.getsignal(signal.SIGINT) == before


def test_a_truncated_record_is_one_message(tmp_path):
    """One trial's rows cut short inside the SQLite file: report and worker say so in one line."""
    import sqlite3

    sweep = grid_file(tmp_path, "truncated", epochs=1, seeds=[0], trials=[{"config": str(CONFIGS / "iris.yaml")}])
    assert worker(sweep).wait(timeout=300) == 0
    with sqlite3.connect(tmp_path / "truncated" / "study.db") as database:
        database.execute("UPDATE trial_user_attributes SET value_json = substr(value_json, 1, 40) WHERE key = 'rows'")
    for process in (worker(sweep), sweep_py("report", str(tmp_path / "truncated"))):
        out, error = process.communicate(timeout=120)
        assert process.returncode == 2 and "a trial's record in the storage is not valid JSON" in error, error
        assert "Traceback" not in error


def test_a_worker_with_another_heartbeat_is_refused(tmp_path):
    """Beats expected every 1 s where the study's workers send one every 20 s: their live trials looked dead."""
    url = engine.storage_url(tmp_path, None)
    first = engine.open_study(engine.open_storage(url, 20), "beats", {"trials": 1}, "maximize")
    assert first.user_attrs[engine.HEARTBEAT_KEY] == 20
    with pytest.raises(ZooError, match=r"every 20 s, and this worker's --heartbeat is 1 s: .* give --heartbeat 20"):
        engine.open_study(engine.open_storage(url, 1), "beats", {"trials": 1}, "maximize")
    again = engine.open_study(engine.open_storage(url, 20), "beats", {"trials": 1}, "maximize")
    assert again.study_name == "beats"


def test_a_trial_whose_worker_died_before_its_first_heartbeat_runs_again(tmp_path):
    """Taken (RUNNING), then its worker killed before a heartbeat or its name: Optuna has no beat to miss."""
    url = engine.storage_url(tmp_path, None)
    trials = expand(read_sweep(grid_file(tmp_path, "orphan", seeds=[0])), str(tmp_path / "orphan"))
    study = engine.open_study(engine.open_storage(url, 1), "orphan", {"trials": 3}, "maximize", trials)
    orphan = study.get_trials(deepcopy=False)[0]
    assert study._storage.set_trial_state_values(orphan._trial_id, optuna.trial.TrialState.RUNNING)  # no beat
    worker = engine.Worker(study, analyses={}, threads=1, devices="1", say=lambda line: None)
    worker.fail_stale()
    assert study._storage.get_trial(orphan._trial_id).state == optuna.trial.TrialState.RUNNING  # within the grace
    time.sleep(3.2)  # GRACE heartbeats of 1 s
    worker.fail_stale()
    assert study._storage.get_trial(orphan._trial_id).state == optuna.trial.TrialState.FAIL
    again = [trial for trial in study.get_trials() if trial.user_attrs[engine.KEY] == orphan.user_attrs[engine.KEY]]
    assert [trial.state for trial in again] == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.WAITING]


def test_a_database_the_server_does_not_have_is_a_mistake(postgresql):
    """The real server answers that the URL names no such database: a mistake in --storage (exit 2), not a fault."""
    from sqlalchemy.engine import make_url

    url = make_url(postgresql).set(database="nodb").render_as_string(hide_password=False)
    with pytest.raises(ZooError, match=r'the server refused it: .*database "nodb" does not exist'):
        engine.open_storage(url)


@pytest.mark.usefixtures("ctrl_c_raises")
def test_a_ctrl_c_while_a_trial_is_built_says_nothing_of_resuming_a_run(tmp_path, monkeypatch, capfd):
    """The CLI said 'resume ... with --ckpt_path last' before the sweep's own line; a sweep resumes otherwise."""
    from zoo.cli import ZooCLI
    from zoo.sweep.run import run_sweep

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ZooCLI, "instantiate_trainer", interrupted)
    spec = read_sweep(grid_file(tmp_path, "built", seeds=[0]))
    with pytest.raises(ZooFailure) as stopped:
        run_sweep(spec, tmp_path / "built", say=lambda line: None)
    assert stopped.value.exit_code == 130
    assert "--ckpt_path" not in capfd.readouterr().err
    study = load(engine.storage_url(tmp_path / "built", None), "built")
    assert {trial.state for trial in study.get_trials()} == {optuna.trial.TrialState.WAITING}


def test_an_output_folder_keeps_to_its_studys_storage(tmp_path, postgresql):
    """Another storage on a finished study's folder ran every trial again into it and rewrote its results.csv."""
    import re

    from zoo.sweep.run import run_sweep

    spec = read_sweep(grid_file(tmp_path, "kept", seeds=[0]))
    own = tmp_path / "own"
    own.mkdir()
    (own / "study.db").write_bytes(b"")  # a folder from before the record, whose study is its own SQLite
    with pytest.raises(ZooError, match=r"holds the rows of the study in its own study.db \(no --storage\); give that"):
        run_sweep(spec, own, say=lambda line: None, storage=postgresql)
    shared = tmp_path / "shared"
    shared.mkdir()
    engine.record_output(shared, postgresql)
    assert (shared / engine.STORAGE_RECORD).read_text() == engine.shown(postgresql) + "\n"
    with pytest.raises(ZooError, match=f"in --storage {re.escape(engine.shown(postgresql))}; give that, or another"):
        run_sweep(spec, shared, say=lambda line: None)  # a worker that forgot --storage
    assert not (own / "runs").exists() and not (shared / "runs").exists() and not (shared / "study.db").exists()
