"""``analysis-pass``: one analysis pass of a multimult population as a run makes it, numbers to files.

What a run's callback does after an epoch, in-process: the analysis of every member at once,
then every member's JSON (and member 0's figures, handed to the background worker) under a
fresh run folder. ``passes`` passes run in a row, as a run's epochs do (each later one looks
back on the earlier results); the best pass counts. The analysis inside each pass (its
arithmetic, all members at once) is clocked; the rest of the pass is bookkeeping: converting,
encoding and writing the results. With ``profile``, one more pass runs under
cProfile and its top functions by cumulative and by own time are printed: where a pass's time
goes. The section ``analysis_pass`` is added to docs/benchmarks.json (and the page redrawn),
with the analysis seconds of the run it replaces beside the new ones (before/after a change).
"""

from __future__ import annotations

import cProfile
import dataclasses
import functools
import io
import os
import pstats
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from zoo import ZooDataModule
from zoo.analyses import Samples
from zoo.bench.configs import DOCS, multimult_population
from zoo.bench.report import read_benchmarks, write_benchmarks
from zoo.callbacks import ActivationAnalysis, TaskSeparation
from zoo.models import Population
from zoo.writer import FIGURES

ANALYSES = {"task_separation": TaskSeparation, "activations": ActivationAnalysis}


def analysis_pass(
    *,
    members: list[int],
    passes: int = 2,
    samples: int = 2000,
    profile: bool = False,
    analyses: tuple[str, ...] = tuple(ANALYSES),
    docs: Path | None = DOCS,
) -> dict:
    """Seconds of a pass of each of ``analyses`` on multimult populations of ``members`` members."""
    data = ZooDataModule("multimult", num_samples=10_000, normalize="none")
    data.setup("fit")
    rows = {}
    for size in members:
        model = multimult_population(size)
        for name in analyses:
            rows[f"{name}/{size}"] = row = timed_passes(ANALYSES[name], model, data, passes=passes, samples=samples)
            print(
                f"{name} of {size} members on {samples} samples: a pass {row['pass']:.2f} s, of which the analysis "
                f"{row['analysis']:.2f} s and the files {row['files']:.2f} s (each the best of {passes}); member 0's "
                f"figures finished {row['figures_after']:.2f} s after the pass",
                flush=True,
            )
            if profile:
                callback = ANALYSES[name](every_n_epochs=1, max_samples=samples)
                with tempfile.TemporaryDirectory() as run_dir:
                    work = functools.partial(callback.run, stand_in_trainer(run_dir, data), model, 0)
                    print(profiled(work, f"{name}, {size} members"), flush=True)
                    FIGURES.flush()
    figures = figure_seconds(data, repeats=passes, samples=samples)
    results = {"load_average": os.getloadavg()[0], "passes": passes, "samples": samples, "rows": rows, **figures}
    if docs is not None:
        everything = read_benchmarks(docs)
        if earlier := everything.get("analysis_pass"):  # the run before this one, for a before/after
            analysis = {key: row["analysis"] for key, row in earlier["rows"].items()}
            results["previous"] = {"load_average": earlier["load_average"], "analysis": analysis}
        everything["analysis_pass"] = results
        write_benchmarks(everything, docs=docs)
        print(f"wrote {docs / 'benchmarks.md'} and benchmarks.json", flush=True)
    return results


def timed_passes(callback_class: type, model: Population, data: ZooDataModule, *, passes: int, samples: int) -> dict:
    """Best seconds of a whole pass, of the analysis inside it, of the rest (the files), and of the figures after it."""
    callback = callback_class(every_n_epochs=1, max_samples=samples)
    inside: list[float] = []
    analyse = callback.analysis.run_members

    def timed(*args, **kwargs) -> list:
        start = time.perf_counter()
        results = analyse(*args, **kwargs)
        inside.append(time.perf_counter() - start)
        return results

    callback.analysis = dataclasses.replace(callback.analysis, run_members=timed)  # the pass's own, clocked
    seconds: dict[str, list[float]] = {"pass": [], "figures_after": []}
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = stand_in_trainer(run_dir, data)
        for epoch in range(passes):
            start = time.perf_counter()
            callback.run(trainer, model, epoch)
            seconds["pass"].append(time.perf_counter() - start)
            start = time.perf_counter()
            FIGURES.flush()
            seconds["figures_after"].append(time.perf_counter() - start)
    if callback.failures:
        raise callback.failures[0][1]
    files = [whole - analysis for whole, analysis in zip(seconds["pass"], inside, strict=True)]
    best = {key: min(values) for key, values in seconds.items()}
    return {**best, "analysis": min(inside), "files": min(files), "members": model.size}


def figure_seconds(data: ZooDataModule, *, repeats: int, samples: int) -> dict[str, dict[str, float]]:
    """Seconds to draw and write one model's figures of a pass (PNG and TensorBoard), inline, best of ``repeats``.

    What the background worker does for member 0 after each pass, or for a single run's model.
    """
    from torch.utils.tensorboard import SummaryWriter

    from zoo.analyses import get_analysis
    from zoo.writer import AnalysisWriter

    model = multimult_population(1)
    seconds = {}
    for name in ANALYSES:
        analysis = get_analysis(name)
        options = analysis.make_options()
        [result] = analysis.run_each_member(model, Samples.of(data, "train", samples), options, layers=None, cache={})
        times = []
        with tempfile.TemporaryDirectory() as folder:
            board = SummaryWriter(folder)
            for epoch in range(repeats):
                writer = AnalysisWriter(folder, prefix=name, label=f"{epoch:03d}", step=epoch, tensorboard=board)
                start = time.perf_counter()
                writer.write(analysis, result, epoch=epoch)
                times.append(time.perf_counter() - start)
            board.close()
        seconds[name] = min(times)
        print(f"{name}: one pass's figures of one model drawn and written inline in {min(times):.2f} s", flush=True)
    return {"figure_seconds": seconds}


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
