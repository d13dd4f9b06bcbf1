"""Distributed training: each rank its own shard of every epoch, metrics as in one process."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import torch
from conftest import CONFIGS, ROOT

from zoo.cli import main
from zoo.data import ZooDataModule
from zoo.data.datamodule import EpochSampler

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
DDP = ["--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"]


def zoo_subprocess(*args: str, cwd, timeout: float = 300) -> subprocess.CompletedProcess:
    """A zoo command in its own processes; a finished distributed run must also end cleanly: its process
    group, left to the interpreter's exit, aborted half the runs after their summary ('terminate called')."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")]), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "zoo", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert "terminate called" not in done.stderr, done.stderr[-2000:]
    return done


@pytest.mark.parametrize("size", [10, 11, 13])
def test_training_shards_cover_the_epoch_evenly(size):
    shards = [EpochSampler(size, shuffle=True, seed=4, rank=rank, world_size=3, pad=True) for rank in range(3)]
    for shard in shards:
        shard.set_epoch(2)
    orders = [shard.order(torch.device("cpu")) for shard in shards]
    assert len({len(order) for order in orders}) == 1 and len(orders[0]) == len(shards[0])
    seen = torch.cat(orders)
    assert set(seen.tolist()) == set(range(size))  # every sample, and only the padding repeats
    assert len(seen) - size == (-size) % 3


def test_evaluation_shards_are_disjoint_and_exact():
    orders = [EpochSampler(10, shuffle=False, rank=rank, world_size=3).order(torch.device("cpu")) for rank in range(3)]
    assert sorted(torch.cat(orders).tolist()) == list(range(10))


def test_ddp_ranks_train_on_disjoint_shards_covering_the_epoch(tmp_path):
    callback = f"[{{class_path: helpers.SeenSamples, init_args: {{folder: {tmp_path}}}}}]"
    result = zoo_subprocess(
        "fit",
        "--config",
        str(CONFIGS / "multimult.yaml"),
        *DDP,
        "--data.num_samples",
        "1200",
        "--trainer.max_epochs",
        "1",
        "--trainer.callbacks",
        callback,
        *QUIET,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    first, second = (torch.load(tmp_path / f"seen_rank{rank}.pt") for rank in (0, 1))
    train_inputs = ZooDataModule("multimult", num_samples=1200, normalize="none").split("train")[0]
    assert len(first) == len(second) == len(train_inputs) // 2  # 1,100 samples, 550 each
    rows = lambda tensor: {tuple(row) for row in tensor.tolist()}  # noqa: E731
    assert not rows(first) & rows(second)
    assert rows(first) | rows(second) == rows(train_inputs)


def test_ddp_validation_metrics_equal_one_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(
        [
            "fit",
            "--config",
            str(CONFIGS / "iris.yaml"),
            "--trainer.max_epochs",
            "3",
            "--trainer.callbacks",
            "null",
            *QUIET,
        ]
    )
    checkpoint = str(tmp_path / "lightning_logs" / "iris" / "version_0" / "checkpoints" / "last.ckpt")
    validate = ["validate", "--config", str(CONFIGS / "iris.yaml"), "--ckpt_path", checkpoint]
    options = ["--trainer.callbacks", "null", "--data.eval_batch_size", "7", *QUIET]
    single = main([*validate, *options])
    result = zoo_subprocess(*validate, *options, *DDP, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    for metric in ("val/acc", "val/loss"):
        printed = float(re.search(rf"{re.escape(metric)}\s+([0-9.e-]+)", result.stdout).group(1))
        assert printed == pytest.approx(single.trainer.callback_metrics[metric].item(), abs=1e-6), metric


def test_ddp_with_the_default_analyses_finishes_in_one_run_folder(tmp_path):
    """Rank 0 analyses alone: nothing it asks may wait for the other rank (a collective), which trains on."""
    result = zoo_subprocess(
        "fit",
        "--config",
        str(CONFIGS / "iris.yaml"),
        *DDP,
        "--trainer.max_epochs",
        "2",
        *QUIET,
        cwd=tmp_path,
        timeout=150,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = tmp_path / "lightning_logs" / "iris"
    assert sorted(folder.name for folder in runs.iterdir()) == ["version_0"]  # the other rank claims no folder
    analysis = runs / "version_0" / "analysis"
    assert sorted(path.name for path in (analysis / "task_separation").glob("*.json")) == [
        "epoch_001.json",
        "epoch_init.json",
    ]
    assert (analysis / "activations" / "epoch_001.json").is_file()
