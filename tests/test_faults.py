"""Faults lose nothing: killed runs resume exactly, writes are atomic, run folders are never shared."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from conftest import CONFIGS, ROOT

from zoo import load_model
from zoo.errors import TrainingDiverged
from zoo.models import FCNet
from zoo.runs import AtomicCheckpointIO, reserve_version

QUIET_RUN = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]

# FCNet with dropout (so the resumed run must also restore the random state), ~1 s an epoch
RUN = [
    "fit",
    "--config",
    str(CONFIGS / "fc.yaml"),
    "--trainer.callbacks",
    "null",
    "--model.init_args.hidden",
    "[256]",
    "--trainer.limit_train_batches",
    "150",
    "--trainer.max_epochs",
    "4",
    "--trainer.enable_progress_bar",
    "false",
]


def start(folder: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "zoo", *RUN, *extra],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the run ended before {path.name} appeared: {process.stderr.read()}"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.05)


def final_state(folder: Path, version: int = 0) -> dict:
    return torch.load(
        folder / "lightning_logs" / "fc" / f"version_{version}" / "checkpoints" / "last.ckpt", weights_only=True
    )


def test_sigkill_mid_epoch_then_resume_gives_the_same_weights(tmp_path, data_dir):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    straight.mkdir()
    killed.mkdir()
    reference = start(straight)
    run = start(killed)
    wait_for(killed / "lightning_logs" / "fc" / "version_0" / "checkpoints" / "last.ckpt", run)
    time.sleep(0.5)  # into the next epoch
    run.send_signal(signal.SIGKILL)
    assert run.wait(timeout=30) == -signal.SIGKILL
    interrupted_at = torch.load(
        killed / "lightning_logs" / "fc" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True
    )["epoch"]
    assert interrupted_at < 3, "the run finished before it was killed"

    resumed = start(killed, "--ckpt_path", "last")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert reference.wait(timeout=300) == 0, reference.stderr.read()
    assert not (killed / "lightning_logs" / "fc" / "version_1").exists()  # resumed in its own folder
    expected, actual = final_state(straight), final_state(killed)
    assert actual["epoch"] == expected["epoch"] == 3 and actual["global_step"] == expected["global_step"]
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(actual["state_dict"][name], tensor), name


def test_sigterm_stops_cleanly_and_leaves_a_resumable_checkpoint(tmp_path, data_dir):
    run = start(tmp_path)
    checkpoint = tmp_path / "lightning_logs" / "fc" / "version_0" / "checkpoints" / "last.ckpt"
    wait_for(checkpoint, run)
    run.send_signal(signal.SIGTERM)
    assert run.wait(timeout=60) == 128 + signal.SIGTERM
    error = run.stderr.read()
    assert "zoo: error: stopped by SIGTERM; resume from the last completed epoch with --ckpt_path last" in error
    assert "Traceback" not in error
    assert load_model(checkpoint).hparams["hidden"] == [256]


def test_two_fits_started_together_never_share_a_folder(tmp_path):
    quick = [
        "fit",
        "--config",
        str(CONFIGS / "iris.yaml"),
        "--trainer.max_epochs",
        "2",
        "--trainer.callbacks",
        "null",
        "--trainer.enable_progress_bar",
        "false",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "zoo", *quick],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(2)
    ]
    assert [run.wait(timeout=120) for run in runs] == [0, 0]
    folders = sorted(path.name for path in (tmp_path / "lightning_logs" / "iris").iterdir())
    assert folders == ["version_0", "version_1"]
    for folder in folders:
        run_dir = tmp_path / "lightning_logs" / "iris" / folder
        assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1
        assert (run_dir / "config.yaml").exists() and (run_dir / "environment.json").exists()


def _reserve(root: str, start_at: float, queue) -> None:
    while time.time() < start_at:
        pass
    queue.put(reserve_version(Path(root)))


def test_version_reservation_is_atomic(tmp_path):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    start_at = time.time() + 0.5
    workers = [context.Process(target=_reserve, args=(str(tmp_path), start_at, queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert sorted(queue.get() for _ in workers) == list(range(6))


def test_checkpoint_write_interrupted_keeps_the_previous_one(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1}, path)

    def dies_halfway(obj, handle):
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [entry.name for entry in tmp_path.iterdir()] == ["last.ckpt"]


def test_non_finite_weights_are_never_saved():
    model = FCNet(hidden=[4], input_shape=(2,), num_outputs=2)
    state = model.state_dict()
    state["head.weight"][0, 0] = float("nan")
    with pytest.raises(
        TrainingDiverged, match=r"refusing to save a checkpoint at step 0: head.weight holds NaN or infinite values"
    ):
        model.on_save_checkpoint({"state_dict": state})


def test_ctrl_c_stops_with_exit_130_and_the_resume_hint(run_dir, capsys):
    """SIGINT raises KeyboardInterrupt in Python; Lightning turns it into sys.exit(1), zoo into 130."""
    from zoo.cli import main

    interrupt = "[{class_path: helpers.InterruptAt, init_args: {step: 8}}]"
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_:
        main(["fit", "--config", str(CONFIGS / "iris.yaml"), "--trainer.callbacks", interrupt, *QUIET_RUN])
    assert exit_.value.code == 130
    assert signal.getsignal(signal.SIGINT) is before  # ignored while Lightning shut down, then put back: main() can
    # be called again from a notebook or a script, and Ctrl-C still interrupts it
    error = capsys.readouterr().err
    assert "zoo: error: interrupted; resume from the last completed epoch with --ckpt_path last" in error
    assert "Traceback" not in error
    assert (run_dir / "lightning_logs" / "iris" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_a_run_folders_record_is_never_rewritten(run_dir):
    """Resuming appends its own config and environment; testing a checkpoint writes beside the run."""
    from zoo.cli import main

    iris = ["--config", str(CONFIGS / "iris.yaml"), "--trainer.callbacks", "null", *QUIET_RUN]
    main(["fit", *iris, "--trainer.max_epochs", "2"])
    run = run_dir / "lightning_logs" / "iris" / "version_0"
    record = {name: (run / name).read_bytes() for name in ("config.yaml", "environment.json")}
    main(["fit", *iris, "--trainer.max_epochs", "3", "--ckpt_path", "last"])
    main(["fit", *iris, "--trainer.max_epochs", "4", "--ckpt_path", "last"])
    assert {name: (run / name).read_bytes() for name in record} == record
    resumes = [yaml.safe_load((run / f"config.resume-{k}.yaml").read_text()) for k in (1, 2)]
    assert [resume["trainer"]["max_epochs"] for resume in resumes] == [3, 4]
    assert (run / "environment.resume-2.json").is_file()
    assert sorted(path.name for path in run.parent.iterdir()) == ["version_0"]  # resumed in place

    tested = main(["test", *iris, "--ckpt_path", "best"])
    assert Path(tested.trainer.log_dir).resolve() == run / "test" / "version_0"  # beside the checkpoint it tested
    assert (run / "test" / "version_0" / "config.yaml").is_file()
    assert {name: (run / name).read_bytes() for name in record} == record


def test_a_checkpoint_on_another_dataset_only_on_purpose(run_dir):
    from zoo.cli import main

    mnist = ["--config", str(CONFIGS / "fc.yaml"), "--trainer.callbacks", "null", *QUIET_RUN]
    tiny = ["--model.hidden", "[8]", "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "1"]
    main(["fit", *mnist, *tiny, "--trainer.max_epochs", "1"])
    checkpoint = str(run_dir / "lightning_logs" / "fc" / "version_0" / "checkpoints" / "last.ckpt")
    other = ["--data.dataset", "fashion_mnist", "--ckpt_path", checkpoint, "--trainer.limit_test_batches", "1"]
    with pytest.raises(SystemExit):
        main(["test", *mnist, *other])
    tested = main(["test", *mnist, *other, "--allow_other_dataset", "true"])
    assert "test/acc" in tested.trainer.callback_metrics


def test_a_run_folder_has_one_writer(run_dir):
    """Two resumes of one run at once: the second says who writes there, exits 2 and leaves the folder as it was."""
    from zoo.cli import main

    iris = ["fit", "--config", str(CONFIGS / "iris.yaml"), *QUIET_RUN, "--trainer.max_epochs"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}

    def resume(epochs: str, callbacks: str = "null") -> subprocess.Popen:
        command = [sys.executable, "-m", "zoo", *iris, epochs, "--ckpt_path", "last", "--trainer.callbacks", callbacks]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    main([*iris, "2", "--trainer.callbacks", "null"])
    run = Path("lightning_logs", "iris", "version_0")
    gate = run_dir / "gate"
    holder = resume("3", f"[{{class_path: helpers.WaitAtStart, init_args: {{gate: {gate}}}}}]")
    wait_for(gate.with_suffix(".waiting"), holder)  # it has written its record and is about to train
    before = {path: path.stat().st_mtime_ns for path in run.rglob("*")}
    second = resume("4")
    assert second.wait(timeout=120) == 2
    error = second.stderr.read()
    assert f"zoo: error: {run} is being written by another zoo run (pid {holder.pid} on " in error, error
    assert "Traceback" not in error
    assert {path: path.stat().st_mtime_ns for path in run.rglob("*")} == before  # nothing written, nothing removed
    gate.touch()
    assert holder.wait(timeout=120) == 0, holder.stderr.read()
    assert sorted(path.name for path in run.glob("config*.yaml")) == ["config.resume-1.yaml", "config.yaml"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2
    main([*iris, "4", "--ckpt_path", "last", "--trainer.callbacks", "null"])  # the lock died with its holder
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 3
