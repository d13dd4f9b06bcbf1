"""``activations``: the activation analysis on the 10,000 MNIST test images, with and without maximization.

The image prior is fitted once per run, so its time is reported on its own.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from zoo import ZooDataModule, create_model
from zoo.analysis import ImagePrior, activation_analysis
from zoo.bench.timing import seconds

MAXIMIZED_UNITS = 8  # units a layer in the timing with activation maximization (the callback's default)


def activations_speed(*, hidden: Sequence[int]) -> dict[str, float]:
    """Seconds: ``{"prior": s, "<device>/maximize=0": s, "<device>/maximize=8": s, ...}``."""
    data = ZooDataModule("mnist")
    inputs, targets = data.split("test")
    train_inputs = data.split("train")[0]
    low, high = data.input_range
    start = time.perf_counter()
    prior = ImagePrior.fit((train_inputs - low) / (high - low))
    timings = {"prior": time.perf_counter() - start}
    model = create_model("FCNet", hidden=list(hidden))
    print(
        f"activation analysis, FCNet hidden={list(hidden)}, {len(inputs)} MNIST test images, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print(f"  image prior fitted on {len(train_inputs)} training images: {timings['prior']:.2f} s (once per run)")
    for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        model.to(device)
        activation_analysis(model, inputs[:256], targets[:256])  # warm-up
        for maximize in (0, MAXIMIZED_UNITS):

            def analysis(maximize: int = maximize) -> None:
                activation_analysis(
                    model,
                    inputs,
                    targets,
                    list(data.output_names),
                    maximize=maximize,
                    prior=prior,
                    input_range=(low, high),
                )

            key = f"{device}/maximize={maximize}"
            timings[key] = seconds(analysis, device)
            what = (
                f"with activation maximization ({maximize} units a layer + 10 classes)"
                if maximize
                else "without activation maximization"
            )
            print(f"  {device}, {what}: {timings[key]:.2f} s")
    return timings
