"""What only a GPU can show: a training step that never waits for the device (issue 25).

Skipped where there is no CUDA GPU (CI); scripts/gpu_record.sh runs them on a lent GPU machine.
"""

from __future__ import annotations

import tempfile

import pytest
import torch

from zoo import ZooDataModule, create_model
from zoo.bench.configs import multimult_population
from zoo.bench.gpu import training_step_syncs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.mark.parametrize(
    "model",
    [
        lambda: create_model("FCNet", hidden=[64], input_shape=(4,), num_outputs=2, task="regression"),
        lambda: multimult_population(10),
    ],
    ids=["FCNet", "Population"],
)
def test_a_training_step_waits_for_the_gpu_only_on_the_steps_the_logger_writes(model, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the sync check's CSV log
    data = ZooDataModule("multimult", num_samples=2000, batch_size=64, normalize="none")
    counts = training_step_syncs(model(), data, steps=25, log_every=10)
    assert counts["other_steps"] == 23 and counts["logging_steps"] == 2
    assert counts["other_syncs"] == 0, counts
    assert counts["logging_syncs"] <= counts["logging_steps"], counts  # one there, by design: the flags read
