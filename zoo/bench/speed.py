"""``speed``: small networks at the speed of their arithmetic (issue 25), every ratio from one run, alternating.

- start-up: ``import zoo`` and ``python -m zoo --help`` in fresh interpreters;
- per step: zoo ÷ plain for FCNet [128] and ``configs/fc.yaml``'s model (one MNIST epoch each), and
  bare Lightning (the loss alone) ÷ plain: the floor Lightning's own per-step work sets;
- a step's callback hooks on a zoo run's Trainer: Lightning's dispatch against zoo's (``zoo.hooks``);
- a population's step: a 100-member multimult population's wall step (a fit, no analyses) against
  its bare arithmetic step and against a single run's wall step;
- analyses over members: task separation and the activation analysis of that population, all
  members at once against member by member (the functions alone, 2,000 samples);
- analyses in a run: ``configs/iris.yaml``'s fit with its analyses (figures drawn in the background,
  then drawn inline) against the same fit without analyses, and ``configs/fc.yaml``'s whole run
  (15 epochs) with and without its analyses.

Runs alternate within each comparison, so that load on the machine hits every side alike; the
best of ``repeats`` counts. The section is added to docs/benchmarks.json (and the page redrawn).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from zoo import ZooDataModule, create_model
from zoo.analysis import activation_analysis, task_separation
from zoo.analysis.members import activation_analysis_of_members, task_separation_of_members
from zoo.bench.configs import CHECKOUT, CONFIGS, DOCS, multimult_population, shipped_model
from zoo.bench.loops import epoch_runs
from zoo.bench.population import step_ms
from zoo.bench.report import ZOO_TRAINER, read_benchmarks, write_benchmarks
from zoo.bench.timing import best_of_alternating, device_name, seconds
from zoo.cli import main as zoo
from zoo.writer import FIGURES

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def speed(
    *, repeats: int, device: torch.device, log_dir: str, members: int = 100, fc_repeats: int = 1, docs: Path = DOCS
) -> dict:
    """Measure every comparison, print it, and add it to docs/benchmarks.json as ``speed``.

    ``fc_repeats``: of configs/fc.yaml's two whole runs (about a minute each on 2 CPU threads).
    """
    results = {
        "machine": device_name(device),
        "load_average": os.getloadavg()[0],
        "repeats": repeats,
        "zoo_trainer": ZOO_TRAINER,
        "startup_seconds": startup(repeats=repeats),
        "per_step": per_step(repeats=repeats, device=device, log_dir=log_dir),
        "hook_dispatch": hook_dispatch(log_dir=log_dir),
        "population": population_step(members=members, repeats=repeats, log_dir=log_dir),
        "member_analyses": member_analyses(members=members, repeats=repeats),
        "iris_analyses": iris_analyses(repeats=repeats, log_dir=log_dir),
        "fc_analyses": fc_analyses(repeats=fc_repeats, log_dir=log_dir),
    }
    everything = read_benchmarks(docs)
    everything["speed"] = results
    write_benchmarks(everything, docs=docs)
    print(f"wrote {docs / 'benchmarks.md'} and benchmarks.json", flush=True)
    return results


def startup(*, repeats: int) -> dict[str, float]:
    """Seconds of ``import zoo``, ``python -m zoo --help`` and ``import pytorch_lightning``, each in a fresh
    interpreter, best of ``repeats``."""
    environment = {**os.environ, "PYTHONPATH": str(CHECKOUT)}
    commands = {
        "import zoo": ["-c", "import zoo"],
        "python -m zoo --help": ["-m", "zoo", "--help"],
        "import pytorch_lightning": ["-c", "import pytorch_lightning"],  # what --help waits for, and zoo cannot cut
    }

    def timed(arguments: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, *arguments], env=environment, capture_output=True, check=True)
        return time.perf_counter() - start

    best = best_of_alternating({name: lambda a=arguments: timed(a) for name, arguments in commands.items()}, repeats)
    for name, value in best.items():
        print(f"start-up: {name} {value:.2f} s", flush=True)
    return best


def per_step(*, repeats: int, device: torch.device, log_dir: str) -> dict[str, dict]:
    """zoo ÷ plain samples/s on one MNIST epoch, for FCNet [128] and configs/fc.yaml's model."""
    data = ZooDataModule("mnist", batch_size=128)
    data.setup("fit")
    models = {"FCNet [128]": create_model("FCNet", hidden=[128]), "configs/fc.yaml": shipped_model("fc.yaml")}
    steps = -(-len(data.split("train")[0]) // 128)
    rows = {}
    for name, template in models.items():
        best = best_of_alternating(epoch_runs(template, data, device=device, log_dir=log_dir, bare=True), repeats)
        rows[name] = {
            "seconds_per_epoch": best,
            "zoo_vs_plain": best["plain"] / best["zoo"],
            "overhead_ms_per_step": (best["zoo"] - best["plain"]) / steps * 1e3,
            "bare_lightning_vs_plain": best["plain"] / best["bare_lightning"],
        }
        print(
            f"per step, {name}: zoo {best['zoo']:.2f} s/epoch, plain {best['plain']:.2f}, bare Lightning "
            f"{best['bare_lightning']:.2f}; zoo ÷ plain {rows[name]['zoo_vs_plain']:.2f}× "
            f"({rows[name]['overhead_ms_per_step']:.3f} ms a step on top), bare Lightning ÷ plain "
            f"{rows[name]['bare_lightning_vs_plain']:.2f}×",
            flush=True,
        )
    return rows


def hook_dispatch(*, log_dir: str, steps: int = 2000, repeats: int = 7) -> dict:
    """µs of the callback hooks of one training step in a zoo run: Lightning's dispatch and zoo's (zoo.hooks).

    The six hooks Lightning's automatic optimization calls each step, on the Trainer of a ``python -m zoo
    fit`` (configs/iris.yaml, no analyses, no progress bar), ``steps`` times; best of ``repeats``, alternating.
    """
    from zoo.hooks import LIGHTNINGS, call_implemented_hooks

    arguments = ["fit", "--config", str(CONFIGS / "iris.yaml"), "--trainer.callbacks", "null"]
    arguments += ["--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false"]
    cli = zoo([*arguments, "--trainer.logger.init_args.save_dir", log_dir])
    trainer, batch = cli.trainer, next(iter(cli.datamodule.train_dataloader()))
    optimizer, loss = trainer.optimizers[0], torch.tensor(1.0)
    hooks = [
        ("on_train_batch_start", (batch, 0)),
        ("on_before_zero_grad", (optimizer,)),
        ("on_before_backward", (loss,)),
        ("on_after_backward", ()),
        ("on_before_optimizer_step", (optimizer,)),
        ("on_train_batch_end", ({"loss": loss}, batch, 0)),
    ]

    def timed(dispatch) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            for hook, values in hooks:
                dispatch(trainer, hook, *values)
        return (time.perf_counter() - start) / steps * 1e6

    runs = {"lightning": lambda: timed(LIGHTNINGS), "zoo": lambda: timed(call_implemented_hooks)}
    row = {**best_of_alternating(runs, repeats), "callbacks": len(trainer.callbacks)}
    print(
        f"callback hooks of a step, {row['callbacks']} callbacks: Lightning's dispatch {row['lightning']:.1f} µs, "
        f"zoo's {row['zoo']:.1f} µs",
        flush=True,
    )
    return row


def population_step(
    *, members: int, repeats: int, log_dir: str, epochs: int | None = None, device: torch.device | None = None
) -> dict:
    """A multimult population's wall step against its arithmetic and a single run's wall step.

    A wall step is a whole fit's wall time (set-up, validation and checkpoints included; no
    analyses) over its training steps, as in the populations' section; ``epochs``: the config's.
    ``device``: where the fits and the arithmetic run (default: where Lightning puts them, a GPU if any).
    """
    common = ["fit", "--config", str(CONFIGS / "multimult.yaml"), "--trainer.callbacks", "null", *QUIET]
    common += ["--trainer.logger.init_args.save_dir", log_dir]
    common += ["--trainer.max_epochs", str(epochs)] if epochs else []
    common += ["--trainer.accelerator", device.type, "--trainer.devices", "1"] if device else []
    fits = {}

    def fit(arguments: list[str]) -> float:
        start = time.perf_counter()
        cli = zoo([*common, *arguments])
        elapsed = time.perf_counter() - start
        fits[arguments[-1] if arguments else "single"] = cli
        return elapsed / cli.trainer.global_step * 1e3

    runs = {"population": lambda: fit(["--population", str(members)]), "single": lambda: fit([])}
    wall = best_of_alternating(runs, repeats)
    population, single = fits[str(members)], fits["single"]
    inputs, targets = population.datamodule.split("train")
    batch = (inputs[:64], targets[:64])
    on = device or population.trainer.strategy.root_device
    arithmetic = {
        "population": step_ms(population.model, *batch, device=on),
        "single": step_ms(single.model, *batch, device=on),
    }
    row = {
        "members": members,
        "epochs": population.trainer.max_epochs,
        "wall_ms_per_step": wall,
        "arithmetic_ms_per_step": arithmetic,
        "wall_vs_arithmetic": wall["population"] / arithmetic["population"],
        "speedup_vs_single_runs": members * wall["single"] / wall["population"],
    }
    print(
        f"population of {members}: wall step {wall['population']:.2f} ms for {arithmetic['population']:.2f} ms of "
        f"arithmetic ({row['wall_vs_arithmetic']:.2f}×); a single run's wall step {wall['single']:.2f} ms: "
        f"{row['speedup_vs_single_runs']:.1f}× faster than {members} single runs (fits with set-up and validation)",
        flush=True,
    )
    return row


def member_analyses(
    *,
    members: int,
    repeats: int,
    samples: int = 2000,
    device: torch.device | None = None,
    by_member: bool = True,
) -> dict[str, dict]:
    """Seconds of each analysis of a multimult population on ``device``, all members at once and member by member.

    ``by_member`` false times the batched pass alone (member by member, 1,000 members take minutes).
    """
    device = device or torch.device("cpu")
    data = ZooDataModule("multimult", num_samples=10_000, normalize="none")
    data.setup("fit")
    inputs, targets = (tensor[:samples].to(device) for tensor in data.split("train"))
    model = multimult_population(members)
    model.to(device)
    singles = list(model.members()) if by_member else []

    def timed(work) -> float:
        return seconds(work, device)

    analyses = {
        "task_separation": (task_separation_of_members, task_separation),
        "activations": (activation_analysis_of_members, activation_analysis),
    }
    rows = {}
    for name, (batched, alone) in analyses.items():
        runs = {"batched": lambda f=batched: timed(lambda: f(model, inputs, targets))}
        if by_member:
            runs["member_by_member"] = lambda f=alone: timed(lambda: [f(single, inputs, targets) for single in singles])
        best = best_of_alternating(runs, repeats)
        rows[name] = best
        said = f"{name} of {members} members on {samples} samples ({device.type}): {best['batched']:.2f} s at once"
        if by_member:
            rows[name]["speedup"] = best["member_by_member"] / best["batched"]
            said += f", {best['member_by_member']:.2f} s member by member ({rows[name]['speedup']:.1f}×)"
        print(said, flush=True)
    return rows


def iris_analyses(*, repeats: int, log_dir: str) -> dict[str, float]:
    """configs/iris.yaml's fit: with its analyses (figures in the background, or inline) and without any."""
    common = ["fit", "--config", str(CONFIGS / "iris.yaml"), *QUIET, "--trainer.logger.init_args.save_dir", log_dir]

    def fit(arguments: list[str], inline: bool = False) -> float:
        FIGURES.inline = inline
        try:
            start = time.perf_counter()
            zoo([*common, *arguments])
            return time.perf_counter() - start
        finally:
            FIGURES.inline = False

    runs = {
        "without": lambda: fit(["--trainer.callbacks", "null"]),
        "background": lambda: fit([]),
        "inline": lambda: fit([], inline=True),
    }
    best = best_of_alternating(runs, repeats)
    row = {**best, "ratio_background": best["background"] / best["without"]}
    row["ratio_inline"] = best["inline"] / best["without"]
    print(
        f"iris fit: {best['without']:.2f} s without analyses, {best['background']:.2f} s with them "
        f"({row['ratio_background']:.1f}×; figures drawn inline: {best['inline']:.2f} s, {row['ratio_inline']:.1f}×)",
        flush=True,
    )
    return row


def fc_analyses(*, repeats: int, log_dir: str) -> dict[str, float]:
    """configs/fc.yaml's whole run (its 15 epochs, the machine's threads) with its analyses and without any."""
    common = ["fit", "--config", str(CONFIGS / "fc.yaml"), *QUIET, "--trainer.logger.init_args.save_dir", log_dir]

    def fit(arguments: list[str]) -> float:
        start = time.perf_counter()
        zoo([*common, *arguments])
        return time.perf_counter() - start

    fit(["--trainer.callbacks", "null", "--trainer.max_epochs", "1"])  # a warm-up, so that neither side pays it
    runs = {"without": lambda: fit(["--trainer.callbacks", "null"]), "with": lambda: fit([])}
    best = best_of_alternating(runs, repeats)
    row = {**best, "share": (best["with"] - best["without"]) / best["with"]}
    print(
        f"fc.yaml run: {best['without']:.1f} s without analyses, {best['with']:.1f} s with them: the analyses are "
        f"{row['share']:.0%} of the run's wall time",
        flush=True,
    )
    return row
