"""``report``: the training, analysis and kernel benchmarks in one run → docs/benchmarks.json and .md.

Every figure of ``docs/benchmarks.md`` is drawn from ``docs/benchmarks.json`` by :func:`markdown`
(a test checks that the page is what the JSON makes), so the page can be redrawn without
measuring again. The populations' section is written by :mod:`zoo.bench.population`, the
speed section by :mod:`zoo.bench.speed`, the analysis pass by :mod:`zoo.bench.analysis_pass`;
a new report keeps them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from zoo import ZooDataModule, ZooModule, create_model
from zoo.analysis import activation_analysis, task_separation
from zoo.bench.configs import DOCS, shipped_model
from zoo.bench.loops import epoch_runs, per_sample_mnist
from zoo.bench.sparse import DENSE, kernel_ms
from zoo.bench.timing import best_of_alternating, device_name, seconds
from zoo.io import write_json, write_text

ANALYSED = [1024, 512]  # the FCNet whose analyses are timed


ZOO_TRAINER = "python -m zoo fit"
"""What :func:`~zoo.bench.loops.zoo_epoch` times: the Trainer zoo's CLI builds (recorded with each measurement)."""


def report(
    *, batch_size: int, repeats: int, device: torch.device, log_dir: str, densities: Sequence[float], docs: Path = DOCS
) -> dict:
    """Measure, then write ``docs/benchmarks.json`` and ``docs/benchmarks.md``; returns the results."""
    data = ZooDataModule("mnist", batch_size=batch_size)
    results: dict = {
        "machine": device_name(device),
        "device": device.type,
        "torch": torch.__version__,
        "batch_size": batch_size,
        "samples_per_epoch": len(data.split("train")[0]),
        "repeats": repeats,
        "zoo_trainer": ZOO_TRAINER,
        "architectures": architectures(data, repeats=repeats, device=device, log_dir=log_dir),
        **analysis_seconds(data),
        "sparse_ms": kernel_ms(features=1000, batch_size=batch_size, densities=densities),
    }
    previous = read_benchmarks(docs)
    results.update({key: previous[key] for key in ("population", "speed", "analysis_pass", "gpu") if key in previous})
    write_benchmarks(results, docs=docs)
    print(f"wrote {docs / 'benchmarks.md'} and benchmarks.json")
    return results


def _lightnings_import(startup: dict[str, float]) -> str:
    """How long importing Lightning alone took in the same run (measured since it is), said after "importing Lightning".

    It sets the start-up figures, and shows how fast the machine was beside the issue's (where ``import zoo``,
    which imported Lightning then, took 3.5 s).
    """
    seconds = startup.get("import pytorch_lightning")
    return f" (`import pytorch_lightning` alone: {seconds:.2f} s in this run)" if seconds is not None else ""


def _zoo_side(section: dict) -> str:
    """What the zoo side of zoo ÷ plain was when ``section`` was measured (the CLI's Trainer since it records so)."""
    if section.get("zoo_trainer") == ZOO_TRAINER:
        return "the Trainer `python -m zoo fit` builds (its callbacks, checkpoints, logger; no validation, no analyses)"
    return "Lightning's `Trainer.fit` on zoo's module (without the callbacks `python -m zoo fit` adds)"


def architectures(data: ZooDataModule, *, repeats: int, device: torch.device, log_dir: str) -> dict[str, dict]:
    """Per shipped config (and a small, data-bound FCNet): seconds per epoch in the three loops, evaluation time."""
    train_inputs, _ = data.split("train")
    classic = per_sample_mnist(data, "train", len(train_inputs))
    models = {f"configs/{config}.yaml": shipped_model(f"{config}.yaml") for config in ("fc", "columnet", "sparsenet")}
    models["FCNet 128 (data-bound)"] = create_model("FCNet", hidden=[128])
    rows = {}
    for config, template in models.items():
        best = best_of_alternating(epoch_runs(template, data, device=device, log_dir=log_dir, classic=classic), repeats)
        evaluation, accuracy = _evaluation(template, data, device)
        rows[config] = row = {
            "model": type(template).__name__,
            "nonzero_parameters": template.parameter_counts()["nonzero"],
            "seconds_per_epoch": best,
            "samples_per_second": {name: len(train_inputs) / value for name, value in best.items()},
            "zoo_vs_plain": best["plain"] / best["zoo"],
            "zoo_vs_per_sample": best["per_sample"] / best["zoo"],
            "evaluation_seconds_10k": evaluation,
            "untrained_test_accuracy": accuracy,
        }
        print(
            f"{config}: zoo {best['zoo']:.2f} s/epoch, plain {best['plain']:.2f}, per-sample "
            f"{best['per_sample']:.2f}; zoo/plain {row['zoo_vs_plain']:.2f}x, zoo/per-sample "
            f"{row['zoo_vs_per_sample']:.2f}x; eval {evaluation:.2f} s",
            flush=True,
        )
    return rows


def _evaluation(model: ZooModule, data: ZooDataModule, device: torch.device) -> tuple[float, float]:
    """Seconds to classify the test split in batches of 1,000, and the accuracy."""
    model = model.to(device).eval()
    inputs, targets = (tensor.to(device) for tensor in data.split("test"))
    correct = []

    def evaluate() -> None:
        with torch.no_grad():
            correct.extend(
                int((model(x).argmax(1) == y).sum()) for x, y in zip(inputs.split(1000), targets.split(1000))
            )

    elapsed = seconds(evaluate, device)
    return elapsed, sum(correct) / len(inputs)


def analysis_seconds(data: ZooDataModule) -> dict[str, float]:
    """Task separation and the activation analysis (no maximization) of an FCNet on the test split, on the CPU."""
    model = create_model("FCNet", hidden=ANALYSED)
    inputs, targets = data.split("test")
    return {
        "task_separation_seconds_10k": seconds(lambda: task_separation(model, inputs, targets), "cpu"),
        "activations_seconds_10k": seconds(
            lambda: activation_analysis(model, inputs, targets, list(data.output_names), maximize=0), "cpu"
        ),
    }


def read_benchmarks(docs: Path = DOCS) -> dict:
    """``docs/benchmarks.json`` as it stands, or nothing yet."""
    path = docs / "benchmarks.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_benchmarks(results: dict, *, docs: Path = DOCS) -> None:
    """The JSON and the page drawn from it, each written atomically."""
    write_json(docs / "benchmarks.json", results, indent=1)
    write_text(docs / "benchmarks.md", markdown(results))


def markdown(results: dict) -> str:
    """``docs/benchmarks.md``: every figure drawn from ``results`` (the JSON), nothing measured here."""
    lines = []
    if "architectures" in results:
        lines += _training(results) + _analyses(results) + _kernels(results["sparse_ms"])
    else:
        lines += ["# Benchmarks"]
    lines += _populations(results.get("population", {}))
    lines += _speed(results["speed"]) if "speed" in results else []
    lines += _analysis_pass(results["analysis_pass"]) if "analysis_pass" in results else []
    lines += _issue_25(results) if "speed" in results and "analysis_pass" in results else []
    lines += _gpu(results["gpu"]) if "gpu" in results else []
    return "\n".join(lines) + "\n"


def _training(results: dict) -> list[str]:
    rows = results["architectures"]
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `python scripts/bench.py report --repeats {results['repeats']}` (one run; every figure down to "
        "the populations comes from it,",
        "and `docs/benchmarks.json` holds them all),",
        f"on {results['machine']}, torch {results['torch']}, batch {results['batch_size']}, "
        f"{results['samples_per_epoch']:,} MNIST training samples an epoch, best of {results['repeats']} alternating "
        "runs." + (" No GPU was used for these figures." if results["device"] == "cpu" else ""),
        "",
        "## Training: seconds per epoch and samples/s, three pipelines",
        "",
        f"- **zoo**: {_zoo_side(results)}, on the tensor DataModule (batches gathered by index on the device);",
        "- **plain**: a hand-written PyTorch loop over the same tensors, same model and optimizer;",
        "- **per-sample**: the classic `Dataset` + `DataLoader`, each image decoded on its own as torchvision's "
        "`MNIST` + `ToTensor` + `Normalize` do (uint8 → PIL → float tensor → normalized), then collated.",
        "",
        "| config | model | nonzero params | zoo s/epoch | plain s/epoch | per-sample s/epoch | zoo samples/s "
        "| zoo ÷ plain | zoo ÷ per-sample | plain ÷ per-sample | eval 10k (s) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for config, row in rows.items():
        t = row["seconds_per_epoch"]
        lines.append(
            f"| {config} | {row['model']} | {row['nonzero_parameters']:,} | {t['zoo']:.2f} | {t['plain']:.2f} | "
            f"{t['per_sample']:.2f} | "
            f"{row['samples_per_second']['zoo']:,.0f} | {row['zoo_vs_plain']:.2f}× | {row['zoo_vs_per_sample']:.2f}× | "
            f"{t['per_sample'] / t['plain']:.2f}× | {row['evaluation_seconds_10k']:.2f} |"
        )
    return lines + _targets(results)


def _targets(results: dict) -> list[str]:
    """Which configs meet the speed targets, and what separates the loops, per step and per sample."""
    rows = results["architectures"]
    steps = -(-results["samples_per_epoch"] // results["batch_size"])
    seconds_per_epoch = [row["seconds_per_epoch"] for row in rows.values()]
    step_overhead_ms = [(t["zoo"] - t["plain"]) / steps * 1e3 for t in seconds_per_epoch]
    decode_us = [(t["per_sample"] - t["plain"]) / results["samples_per_epoch"] * 1e6 for t in seconds_per_epoch]

    def meeting(key: str, target: float) -> str:
        met = [config for config, row in rows.items() if row[key] >= target]
        missed = [f"{config} at {row[key]:.2f}×" for config, row in rows.items() if row[key] < target]
        return f"met by {', '.join(met) or 'none'}" + (f"; not by {', '.join(missed)}" if missed else "")

    return [
        "",
        "Ratios are of samples/s (higher is better for the first named). Targets: zoo ≥ 0.9× plain and ≥ 3× "
        "per-sample.",
        "",
        f"- zoo ≥ 0.9× plain: {meeting('zoo_vs_plain', 0.9)}. What zoo adds to the plain loop is "
        "Lightning's per-step work (hooks, closure, metric update, NaN check): "
        f"{min(step_overhead_ms):.2f}–{max(step_overhead_ms):.2f} ms a step here.",
        f"- zoo ≥ 3× per-sample: {meeting('zoo_vs_per_sample', 3.0)}. Decoding one sample at a time "
        f"costs {min(decode_us):.0f}–{max(decode_us):.0f} µs a sample on top of the arithmetic. The plain ÷ "
        "per-sample column is the "
        "most a pipeline can gain over the per-sample one by batching alone (the plain loop does nothing but the "
        "arithmetic), "
        "so where it is below 3× the model's arithmetic, not its data pipeline, sets the epoch time on this machine.",
    ]


def _analyses(results: dict) -> list[str]:
    return [
        "",
        f"## Analyses (FCNet {'-'.join(map(str, ANALYSED))}, the 10,000 test images)",
        "",
        f"- task separation: {results['task_separation_seconds_10k']:.2f} s",
        f"- activation analysis without activation maximization: {results['activations_seconds_10k']:.2f} s",
    ]


def _kernels(table: dict) -> list[str]:
    backends = [name for name in table if name != DENSE]
    lines = [
        "",
        "## Sparse kernels (forward + backward, 1000×1000 layer, ms; see docs/sparse.md)",
        "",
        "| density | " + " | ".join(backends) + f" | {DENSE} |",
        "| ---: |" + " ---: |" * len(table),
    ]
    for density in table[backends[0]]:
        cells = [f"{table[name][density]:.2f}" for name in backends]
        lines.append(f"| {density} | " + " | ".join(cells) + f" | {table[DENSE]:.2f} |")
    return lines


def _populations(populations: dict) -> list[str]:
    if not populations:
        return []
    lines = [
        "",
        "## Populations: N seeds as one batched model (`python scripts/bench.py population`)",
        "",
        "Each population trains in one process as one `Population` model; the single runs are the same",
        "config fitted one after another in the same process, one per seed, through the same CLI (no analyses).",
        "Both are scored with their final weights on the test split; the KS test compares the two",
        "distributions of the metric (a large p: no evidence that they differ).",
        "",
        "| config | members | epochs | threads | population | single runs | speed-up | population metric "
        "| single-run metric | KS p |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in populations.values():
        name = f"{row['config']} {' '.join(row['flags'])}".strip()
        metric = {side: mean_std(row[f"{side}_scores"]) for side in ("population", "single")}
        lines.append(
            f"| `{name}` | {row['members']} | {row['epochs']} | {row['threads']} | {row['population_seconds']:.0f} s "
            f"| {row['single_runs_seconds']:.0f} s | {row['speedup']:.1f}× | {row['metric']} {metric['population']} "
            f"| {metric['single']} | {row['ks_p_value']:.2f} |"
        )
    return lines + _population_steps(populations)


def mean_std(scores: Sequence[float]) -> str:
    """``mean ± std`` of scores, the sample std (n − 1, as everywhere in zoo; 0 for one score)."""
    values = np.asarray(scores, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def _population_steps(populations: dict) -> list[str]:
    """Where a population's time goes per training step, and what batching alone could gain."""
    timed = {name: row for name, row in populations.items() if "arithmetic_ms_per_step" in row}
    if not timed:
        return []
    lines = [
        "",
        "Where the time goes, per training step: *wall* is a fit's wall time over its training steps",
        "(validation, checkpoints and set-up included; a single run's averaged over the N runs), *arithmetic*",
        "one bare PyTorch step on one batch (forward, loss, backward, Adam; no Lightning), best of 20. The rest",
        "of a wall step is work per step or per epoch (Lightning's hooks and logging, the batch gather,",
        "metrics, validation), which a population pays once for all its members.",
        "",
        "| population | single run: wall | arithmetic | share | population: wall | arithmetic "
        "| share | arithmetic ÷ one member's |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ceilings = [""]
    for name, row in timed.items():
        single_wall = row["single_runs_seconds"] / row["members"] / row["steps"] * 1e3
        population_wall = row["population_seconds"] / row["steps"] * 1e3
        single, population = row["arithmetic_ms_per_step"]["single"], row["arithmetic_ms_per_step"]["population"]
        lines.append(
            f"| {name}, {row['members']} members | {single_wall:.2f} ms | {single:.2f} ms "
            f"| {single / single_wall:.0%} | {population_wall:.2f} ms | {population:.2f} ms "
            f"| {population / population_wall:.0%} | {population / single:.1f}× |"
        )
        ceilings.append(
            f"- {name}: were the population's step nothing but its arithmetic, the population would be "
            f"{row['members'] * single_wall / population:.1f}× faster than the single runs (N × a single run's "
            f"wall step ÷ the population's arithmetic step); it is {row['speedup']:.1f}×."
        )
    return lines + ceilings


def _speed(speed: dict) -> list[str]:
    """Issue 25's figures: start-up, per-step work, a population's step, analyses over members and in a run."""
    steps, population = speed["per_step"], speed["population"]
    analyses, iris = speed["member_analyses"], speed["iris_analyses"]
    lines = [
        "",
        f"## Small networks at the speed of their arithmetic (`python scripts/bench.py speed --repeats "
        f"{speed['repeats']}`)",
        "",
        f"On {speed['machine']}, load average {speed['load_average']:.1f} when it started; every ratio from one run,",
        f"its sides alternating, best of {speed['repeats']}. zoo ÷ plain: {_zoo_side(speed)}.",
        "",
        "| what | figure |",
        "| --- | ---: |",
    ]
    lines += [f"| `{name}` | {value:.2f} s |" for name, value in speed["startup_seconds"].items()]
    for name, row in steps.items():
        bare = row.get("bare_lightning_vs_plain")  # measured since this column was added
        floor = f"; bare Lightning, the loss alone: {bare:.2f}×" if bare is not None else ""
        lines.append(
            f"| zoo ÷ plain, {name} (one MNIST epoch) | {row['zoo_vs_plain']:.2f}× "
            f"({row['overhead_ms_per_step']:.3f} ms a step on top{floor}) |"
        )
    if "hook_dispatch" in speed:  # measured since zoo dispatches callback hooks itself (zoo.hooks)
        hooks = speed["hook_dispatch"]
        lines.append(
            f"| a training step's callback hooks, a zoo run's {hooks['callbacks']} callbacks: Lightning's dispatch "
            f"→ zoo's (`zoo.hooks`) | {hooks['lightning']:.0f} µs → {hooks['zoo']:.0f} µs |"
        )
    lines += [
        f"| multimult population of {population['members']}, {population['epochs']} epochs: wall step ÷ arithmetic "
        f"| {population['wall_vs_arithmetic']:.2f}× ({population['wall_ms_per_step']['population']:.2f} ms ÷ "
        f"{population['arithmetic_ms_per_step']['population']:.2f} ms) |",
        f"| … its speed-up over {population['members']} single runs (their wall steps) "
        f"| {population['speedup_vs_single_runs']:.1f}× |",
    ]
    for name, row in analyses.items():
        lines.append(
            f"| {name.replace('_', ' ')} of {population['members']} members, 2,000 samples: at once "
            f"| {row['batched']:.2f} s ({row['speedup']:.1f}× member by member's {row['member_by_member']:.2f} s) |"
        )
    lines += [
        f"| `configs/iris.yaml` fit with its analyses ÷ without (figures in the background) "
        f"| {iris['ratio_background']:.1f}× ({iris['background']:.1f} s ÷ {iris['without']:.1f} s) |",
        f"| … figures drawn inline instead | {iris['ratio_inline']:.1f}× ({iris['inline']:.1f} s) |",
    ]
    if "fc_analyses" in speed:  # measured since the figure thread stopped slowing training (absent before)
        fc = speed["fc_analyses"]
        lines.append(
            f"| `configs/fc.yaml` (15 epochs): its analyses' share of the run's wall time | {fc['share']:.0%} "
            f"({fc['with']:.1f} s with them, {fc['without']:.1f} s without) |"
        )
    return lines


def _analysis_pass(section: dict) -> list[str]:
    """A population's analysis pass as a run makes it: the analysis, then every member's files."""
    lines = [
        "",
        "## A population's analysis pass (`python scripts/bench.py analysis-pass`)",
        "",
        f"Multimult populations (FCNet [32, 32], tanh), {section['samples']:,} samples, one thread; load average "
        f"{section['load_average']:.1f} when it ended; each column the best of {section['passes']} passes in a row. "
        "A pass is what a run's callback does after an epoch: the analysis of all members at once (clocked inside "
        "the pass), then each member's JSON (member 0's figures go to the background worker); *files* is the rest "
        "of the pass: converting, encoding and writing the results.",
    ]
    previous = section.get("previous")
    if previous:
        lines[-1] += (
            f" *Analysis, run before*: the analysis in the run this one replaced (load average "
            f"{previous['load_average']:.1f} when it ended), for a before/after."
        )
    header, rule = (" analysis, run before |", " ---: |") if previous else ("", "")
    lines += [
        "",
        "| analysis | members | pass | analysis | files | files per member |" + header,
        "| --- | ---: | ---: | ---: | ---: | ---: |" + rule,
    ]
    for key, row in section["rows"].items():
        name = key.rpartition("/")[0].replace("_", " ")
        before = ""
        if previous:
            before = f" {previous['analysis'][key]:.2f} s |" if key in previous["analysis"] else " – |"
        lines.append(
            f"| {name} | {row['members']:,} | {row['pass']:.2f} s | {row['analysis']:.2f} s | {row['files']:.2f} s "
            f"| {row['files'] / row['members'] * 1e3:.1f} ms |{before}"
        )
    drawn = ", ".join(f"{name.replace('_', ' ')} {value:.2f} s" for name, value in section["figure_seconds"].items())
    return lines + [
        "",
        f"One model's figures of a pass, drawn and written inline (PNG files and TensorBoard; what the background "
        f"worker does for member 0, or for a single run): {drawn}.",
    ]


def _issue_25(results: dict) -> list[str]:
    """Issue 25's figures side by side: as the issue opened (quoted), as measured above, and its target."""
    speed, passes = results["speed"], results["analysis_pass"]["rows"]
    steps, population = speed["per_step"], speed["population"]
    rows = [  # (what, before as the issue gave it, now, format, target, whether higher is better)
        (
            "`configs/iris.yaml` fit: with its analyses ÷ without",
            "19× (19 s ÷ 1 s)",
            speed["iris_analyses"]["ratio_background"],
            "{:.1f}×",
            2.0,
            False,
        ),
        (
            "`configs/fc.yaml`: its analyses' share of the run's wall time",
            "43% (12.5 of 29 s, 3 epochs)",
            speed["fc_analyses"]["share"] if "fc_analyses" in speed else None,
            "{:.0%}",
            0.10,
            False,
        ),
        (
            "zoo ÷ plain, `configs/fc.yaml`",
            "0.75–0.88×",
            steps["configs/fc.yaml"]["zoo_vs_plain"],
            "{:.2f}×",
            0.95,
            True,
        ),
        ("zoo ÷ plain, FCNet [128]", "0.62×", steps["FCNet [128]"]["zoo_vs_plain"], "{:.2f}×", 0.85, True),
        (
            f"multimult population of {population['members']}: wall step ÷ arithmetic",
            "2.72× (8.77 ÷ 3.23 ms)",
            population["wall_vs_arithmetic"],
            "{:.2f}×",
            1.5,
            False,
        ),
        (
            f"… its speed-up over {population['members']} single runs",
            "23×",
            population["speedup_vs_single_runs"],
            "{:.1f}×",
            40.0,
            True,
        ),
    ]
    before = {"task_separation": {100: "14.5–18.3 s", 1000: "159–203 s"}, "activations": {100: "13.6 s", 1000: "138 s"}}
    for key, row in passes.items():
        name, members = key.rpartition("/")[0], row["members"]
        if members in before.get(name, {}):
            target = 2.0 if members == 100 else 15.0
            what = f"{name.replace('_', ' ')}: a run's pass over {members:,} members"
            rows.append((what, before[name][members], row["pass"], "{:.2f} s", target, False))
    startup = speed["startup_seconds"]
    rows += [
        ("`python -m zoo --help`", "4.8 s", startup["python -m zoo --help"], "{:.2f} s", None, False),
        ("`import zoo`", "3.5 s", startup["import zoo"], "{:.2f} s", None, False),
    ]
    lines = [
        "",
        "## Issue 25: before, now, target",
        "",
        "*Before*: the figures issue 25 opened with (quoted; the same kind of 2-CPU machine); *now*: the sections "
        "above. Start-up has no number for a target (load only what is used): what `--help` still takes is "
        f"importing Lightning{_lightnings_import(startup)}. The issue's GPU record waits for a lent GPU "
        "(`scripts/gpu_prepare.sh` here, then `scripts/gpu_record.sh` in one call of the GPU machine).",
    ]
    floors = [
        f"{row['bare_lightning_vs_plain']:.2f}× ({name})"
        for name, row in steps.items()
        if "bare_lightning_vs_plain" in row
    ]
    if floors:
        lines[-1] += (
            f" Lightning's own training loop with nothing of zoo's (the loss alone) reaches {' and '.join(floors)} "
            "of the plain loop; zoo's metrics, logging and NaN check come on top of that."
        )
    lines += [
        "",
        "| what | before | now | target | met |",
        "| --- | ---: | ---: | ---: | :---: |",
    ]
    for what, was, now, form, target, higher in rows:
        if now is None:
            continue
        if target is None:
            goal, met = "–", "–"
        else:
            goal = ("≥ " if higher else "≤ ") + form.format(target)
            met = "yes" if (now >= target if higher else now <= target) else "no"
        lines.append(f"| {what} | {was} | {form.format(now)} | {goal} | {met} |")
    return lines


def _gpu(record: dict) -> list[str]:
    """Issue 25's GPU record: syncs in a training step, an epoch, populations and their analyses, the CPU beside."""
    where = "On a GPU" if "syncs" in record else "The GPU record's benchmarks, run without a GPU"
    lines = [
        "",
        f"## {where} (`bash scripts/gpu_record.sh`, one call of a lent GPU machine)",
        "",
        f"On {record['machine']}, torch {record['torch']}; *CPU*: the same machine's ({record['cpu']}). "
        f"Best of {record['repeats']} alternating runs where a row says nothing else.",
    ]
    if "syncs" in record:
        lines += [
            "",
            "Host–device synchronisations inside zoo's `training_step` (CUDA's sync debug mode; Lightning's own loop, "
            "backward and optimizer step not counted). On the steps the logger writes, the loss is logged and the "
            "finiteness flags are read: one sync there is by design.",
            "",
            "| model | steps not logged | their syncs | steps logged | their syncs |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {name} | {counts['other_steps']} | {counts['other_syncs']} | {counts['logging_steps']} "
            f"| {counts['logging_syncs']} |"
            for name, counts in record["syncs"].items()
        ]
    if "fc_epoch" in record:
        epoch = record["fc_epoch"]
        kinds = list(epoch)
        lines += ["", f"`configs/fc.yaml`'s model, one MNIST epoch (batch 128), seconds; zoo: {_zoo_side(record)}:", ""]
        lines += ["| loop | " + " | ".join(kinds) + " |", "| --- |" + " ---: |" * len(kinds)]
        for loop in ("zoo", "plain", "bare_lightning"):
            lines.append(
                f"| {loop.replace('_', ' ')} | " + " | ".join(f"{epoch[kind][loop]:.2f}" for kind in kinds) + " |"
            )
        lines.append(
            "| zoo ÷ plain (samples/s) | "
            + " | ".join(f"{epoch[kind]['plain'] / epoch[kind]['zoo']:.2f}×" for kind in kinds)
            + " |"
        )
    if "populations" in record:
        lines += [
            "",
            "Multimult populations (`configs/multimult.yaml --population N`, no analyses, one fit each): a wall step "
            "is a fit's wall time over its training steps; the single run is the same config's.",
            "",
            "| members | epochs | wall step | arithmetic | wall ÷ arithmetic | a single run's wall step "
            "| speed-up over N single runs |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for row in record["populations"].values():
            wall, arithmetic = row["wall_ms_per_step"], row["arithmetic_ms_per_step"]
            lines.append(
                f"| {row['members']:,} | {row['epochs']} | {wall['population']:.2f} ms | "
                f"{arithmetic['population']:.2f} ms | {row['wall_vs_arithmetic']:.2f}× | {wall['single']:.2f} ms | "
                f"{row['speedup_vs_single_runs']:.1f}× |"
            )
    if "member_analyses" in record:
        lines += [
            "",
            "A population's analyses on 2,000 samples, all members at once (member by member where timed), seconds:",
            "",
            "| analysis | members | where | at once | member by member |",
            "| --- | ---: | --- | ---: | ---: |",
        ]
        for key, analyses in record["member_analyses"].items():
            size, kind = key.split("/")
            for name, row in analyses.items():
                alone = f"{row['member_by_member']:.2f}" if "member_by_member" in row else "–"
                lines.append(f"| {name.replace('_', ' ')} | {int(size):,} | {kind} | {row['batched']:.2f} | {alone} |")
    return lines
