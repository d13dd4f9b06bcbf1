"""``analysis-pass``: one analysis pass of a multimult population as a run makes it, numbers to files.

What a run's callback does after an epoch, in-process: the analysis of every member at once,
then every member's JSON (and member 0's figures, handed to the background worker) under a
fresh run folder. ``passes`` passes run in a row, as a run's epochs do (each later one sees
the earlier results); the best pass counts, and the figures' drawing is timed apart (it is off
the critical path). With ``profile``, one more pass runs under cProfile and its top functions
by cumulative and by own time are printed: where a pass's time goes.
"""

from __future__ import annotations

import cProfile
import functools
import io
import pstats
import tempfile
import time
from types import SimpleNamespace

from zoo import ZooDataModule
from zoo.callbacks import ActivationAnalysis, TaskSeparation
from zoo.models import Population
from zoo.writer import FIGURES

ANALYSES = {"task_separation": TaskSeparation, "activations": ActivationAnalysis}


def analysis_pass(
    *,
    members: list[int],
    passes: int = 3,
    samples: int = 2000,
    profile: bool = False,
    analyses: tuple[str, ...] = tuple(ANALYSES),
) -> dict:
    """Seconds of one pass of each of ``analyses`` (shipped ones) of multimult populations of ``members`` members."""
    data = ZooDataModule("multimult", num_samples=10_000, normalize="none")
    data.setup("fit")
    rows = {}
    for size in members:
        model = Population(
            "FCNet",
            size=size,
            member={"hidden": [32, 32], "activation": "tanh"},
            input_shape=(4,),
            num_outputs=2,
            task="regression",
        )
        for name in analyses:
            callback = ANALYSES[name](every_n_epochs=1, max_samples=samples)
            with tempfile.TemporaryDirectory() as run_dir:
                trainer = stand_in_trainer(run_dir, data)
                seconds, drawing = [], []
                for epoch in range(passes):
                    start = time.perf_counter()
                    callback.run(trainer, model, epoch)
                    seconds.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    FIGURES.flush()
                    drawing.append(time.perf_counter() - start)
                if callback.failures:
                    raise callback.failures[0][1]
                if profile:
                    print(profiled(functools.partial(callback.run, trainer, model, passes), f"{name}, {size} members"))
                    FIGURES.flush()
            rows[f"{name}/{size}"] = {"pass_seconds": min(seconds), "figures_after_seconds": min(drawing)}
            print(
                f"{name} of {size} members on {samples} samples: a pass {min(seconds):.2f} s "
                f"(best of {passes}; each {', '.join(f'{s:.2f}' for s in seconds)}), "
                f"figures drawn after it {min(drawing):.2f} s",
                flush=True,
            )
    return rows


def stand_in_trainer(run_dir: str, datamodule: ZooDataModule) -> SimpleNamespace:
    """What an analysis callback reads of a trainer: a run folder, no loggers, global rank zero."""
    return SimpleNamespace(
        fast_dev_run=False,
        log_dir=run_dir,
        default_root_dir=run_dir,
        loggers=[],
        global_step=0,
        is_global_zero=True,
        sanity_checking=False,
        datamodule=datamodule,
    )


def profiled(work, title: str, top: int = 18) -> str:
    """``work()`` under cProfile: its top functions by cumulative and by own time, as text."""
    profiler = cProfile.Profile()
    profiler.enable()
    work()
    profiler.disable()
    text = io.StringIO()
    text.write(f"--- profile: {title} ---\n")
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return text.getvalue()
