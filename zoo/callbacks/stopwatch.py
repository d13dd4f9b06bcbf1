"""``Stopwatch``: wall time of each stage of a run (train, validate, test, predict)."""

from __future__ import annotations

import time

import pytorch_lightning as pl


class Stopwatch(pl.Callback):
    """Seconds spent in each stage, in ``seconds["train"]`` etc.; sweeps and benchmarks read them.

    (Lightning's ``Timer`` does this too, but its Enum argument cannot be written in a config.)
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def _start(self, stage: str) -> None:
        self._started[stage] = time.perf_counter()

    def _stop(self, stage: str) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - self._started.pop(stage)

    def on_train_start(self, trainer, pl_module) -> None:
        self._start("train")

    def on_train_end(self, trainer, pl_module) -> None:
        self._stop("train")

    def on_test_start(self, trainer, pl_module) -> None:
        self._start("test")

    def on_test_end(self, trainer, pl_module) -> None:
        self._stop("test")
