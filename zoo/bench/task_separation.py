"""``task-separation``: the analysis on the 10,000 MNIST test images against the per-sample loop.

The vectorized analysis runs on every device this machine has; the per-sample reference
(``zoo.analysis.reference``) runs on ``reference_samples`` images on the CPU and is scaled to
the test set's size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo import ZooDataModule, create_model
from zoo.analysis import task_separation
from zoo.analysis.reference import attribution_loop, task_gradients_loop
from zoo.bench.timing import seconds


def task_separation_speed(*, hidden: Sequence[int], reference_samples: int) -> dict[str, float]:
    """Seconds: ``{"vectorized/<device>": s, ..., "per_sample/cpu": s scaled to the test set}``."""
    inputs, targets = ZooDataModule("mnist").split("test")
    model = create_model("FCNet", hidden=list(hidden))
    print(
        f"task separation, FCNet hidden={list(hidden)}, {len(inputs)} MNIST test images, "
        f"{torch.get_num_threads()} CPU threads"
    )
    timings = {}
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model.to(device)
        task_separation(model, inputs[:256], targets[:256])  # warm-up
        timings[f"vectorized/{device}"] = seconds(lambda: task_separation(model, inputs, targets), device)
        print(f"  vectorized on {device}: {timings[f'vectorized/{device}']:.2f} s")
    model.to("cpu")
    subset = reference_samples

    def reference() -> None:
        task_gradients_loop(model, inputs[:subset], targets[:subset])
        attribution_loop(model, inputs[:subset])

    timings["per_sample/cpu"] = seconds(reference, "cpu") * len(inputs) / subset
    print(
        f"  per-sample loop on cpu: {timings['per_sample/cpu']:.1f} s (measured on {subset} images, "
        f"scaled ×{len(inputs) / subset:.0f})"
    )
    return timings
