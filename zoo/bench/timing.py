"""Clocks the benchmarks share: device-synchronised timing, alternating repeats, a machine's name."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable

import torch
from torch.utils import benchmark


def synchronize(device: str | torch.device) -> None:
    """Wait for the device's queued work, so that a clock stopped next measures it (a no-op on the CPU)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def seconds(work: Callable[[], object], device: str | torch.device) -> float:
    """Wall time of ``work()`` on ``device``, synchronised before the clock starts and before it stops."""
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def best_of_alternating(runs: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each run ``repeats`` times, in turn, so that load on the machine hits every run alike; each one's best.

    A run returns the seconds it measured itself (a training epoch times its own loop, not its set-up).
    """
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(run())
    return {name: min(values) for name, values in times.items()}


def forward_backward_ms(layer: torch.nn.Module, x: torch.Tensor) -> float:
    """Median ms of ``layer(x).sum().backward()`` (torch.utils.benchmark, which synchronises CUDA)."""
    timer = benchmark.Timer(
        stmt="layer(x).sum().backward()", globals={"layer": layer, "x": x}, num_threads=torch.get_num_threads()
    )
    return timer.blocked_autorange(min_run_time=1.0).median * 1e3


def default_device() -> torch.device:
    """Where the training benchmarks run unless told: a GPU when there is one."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def device_name(device: torch.device) -> str:
    """The machine behind a figure: the GPU's name on CUDA, and the CPU with its thread count always."""
    cpu = f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} CPU threads"
    return f"{torch.cuda.get_device_name(device)} ({cpu})" if device.type == "cuda" else cpu
