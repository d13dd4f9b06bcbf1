"""``pipeline``: one FCNet epoch on MNIST, zoo (Lightning) against a plain PyTorch loop.

Both loops train the same model with the same optimizer on batches of the same tensors, on
``device``; runs alternate so that load on the machine hits both alike, and the best of
``repeats`` counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo import ZooDataModule, create_model
from zoo.bench.loops import epoch_runs
from zoo.bench.timing import best_of_alternating, device_name


def pipeline(
    *, hidden: Sequence[int], batch_size: int, repeats: int, device: torch.device, log_dir: str
) -> dict[str, float]:
    """Seconds of the best epoch in each loop, ``{"zoo": s, "plain": s}``; prints them with samples/s."""
    data = ZooDataModule("mnist", batch_size=batch_size)
    data.setup("fit")
    samples = len(data.split("train")[0])
    template = create_model("FCNet", hidden=list(hidden))
    best = best_of_alternating(epoch_runs(template, data, device=device, log_dir=log_dir), repeats)
    print(
        f"FCNet hidden={list(hidden)}, batch {batch_size}, {samples} samples/epoch, {device_name(device)}, "
        f"best of {repeats}"
    )
    print(f"{'pipeline':<34}{'s/epoch':>9}{'samples/s':>12}")
    print(f"{'zoo (Lightning + TensorLoader)':<34}{best['zoo']:>9.2f}{samples / best['zoo']:>12,.0f}")
    print(f"{'plain PyTorch loop':<34}{best['plain']:>9.2f}{samples / best['plain']:>12,.0f}")
    print(f"ratio zoo / plain samples/s: {best['plain'] / best['zoo']:.3f}")
    return best
