"""``gpu``: issue 25's GPU record, sized to one call of a lent GPU machine (scripts/gpu_record.sh).

On ``device`` (a GPU), with the same machine's CPU beside it where that costs seconds:

- whether a training step waits for the GPU: host–device synchronisations counted inside
  ``training_step`` (CUDA's sync debug mode), apart on the steps the logger writes;
- configs/fc.yaml's model: seconds per MNIST epoch, zoo, the plain loop and bare Lightning;
- multimult populations of 100 and 1,000 members: wall step ÷ arithmetic, and the speed-up over
  single runs (their wall steps), as ``speed`` measures them on the CPU;
- those populations' analyses, all members at once (member by member too for 100).

Every section is written to ``out`` as soon as it is measured, so a run cut short keeps what it
measured; ``bench.py report`` draws the page from docs/benchmarks.json's ``gpu`` section.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch

from zoo import ZooDataModule, ZooModule
from zoo.bench.configs import DOCS, multimult_population, shipped_model
from zoo.bench.loops import epoch_runs
from zoo.bench.report import ZOO_TRAINER, read_benchmarks, write_benchmarks
from zoo.bench.timing import best_of_alternating, device_name
from zoo.io import write_bytes

SYNC_WARNING = "synchroniz"  # CUDA's sync debug mode warns "called a synchronizing CUDA operation"


def training_step_syncs(model: ZooModule, data: ZooDataModule, *, steps: int = 30, log_every: int = 10) -> dict:
    """Host–device synchronisations inside ``model.training_step`` over ``steps`` steps of a fit on the GPU.

    Counted apart on the steps the logger writes (every ``log_every``: the loss is logged and the
    finiteness flags read there, one sync by design) and on every other step (none is the goal).
    Only zoo's step is watched: Lightning's own loop, backward and optimizer step are not.
    """
    counts = {"logging_steps": 0, "logging_syncs": 0, "other_steps": 0, "other_syncs": 0}
    step = model.training_step

    def watched(*args, **kwargs):
        logging = model._logging_step()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                return step(*args, **kwargs)
            finally:
                torch.cuda.set_sync_debug_mode("default")
                kind = "logging" if logging else "other"
                counts[f"{kind}_steps"] += 1
                counts[f"{kind}_syncs"] += sum(SYNC_WARNING in str(warning.message) for warning in caught)

    model.training_step = watched
    trainer = pl.Trainer(
        accelerator="cuda",
        devices=1,
        max_steps=steps,
        log_every_n_steps=log_every,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=pl.loggers.CSVLogger(tempfile.gettempdir(), name="zoo-sync-check"),
    )
    trainer.fit(model, datamodule=data)
    return counts


def gpu_record(
    *,
    device: torch.device,
    log_dir: str,
    out: Path,
    repeats: int = 2,
    members: tuple[int, ...] = (100, 1000),
    epochs: int | None = None,
    docs: Path = DOCS,
) -> dict:
    """Measure every section on ``device`` (and the CPU beside it), writing ``out`` after each; the record.

    ``epochs``: the populations' (default: configs/multimult.yaml's 30). At the end the record becomes
    docs/benchmarks.json's ``gpu`` section, and the page is redrawn.
    """
    from zoo.bench.speed import member_analyses, population_step

    kinds = list(dict.fromkeys((device, torch.device("cpu"))))  # the device, then the CPU beside it
    record: dict = {
        "machine": device_name(device),
        "cpu": device_name(torch.device("cpu")),
        "torch": torch.__version__,
        "repeats": repeats,
        "zoo_trainer": ZOO_TRAINER,
    }

    def section(name: str, measure: Callable[[], object]) -> None:
        print(f"--- {name}", flush=True)
        record[name] = measure()
        write_bytes(out, json.dumps(record, indent=1).encode() + b"\n")

    if device.type == "cuda":
        mnist = ZooDataModule("mnist", batch_size=128)
        multimult = ZooDataModule("multimult", num_samples=10_000, batch_size=64, normalize="none")
        section(
            "syncs",
            lambda: {
                "FCNet (configs/fc.yaml)": training_step_syncs(shipped_model("fc.yaml"), mnist),
                "Population of 100 (configs/multimult.yaml)": training_step_syncs(
                    multimult_population(100),
                    multimult,
                ),
            },
        )
    section("fc_epoch", lambda: {kind.type: _fc_epoch(kind, repeats=repeats, log_dir=log_dir) for kind in kinds})
    section(
        "populations",
        lambda: {
            str(size): population_step(members=size, repeats=1, log_dir=log_dir, device=device, epochs=epochs)
            for size in members
        },
    )
    section(
        "member_analyses",
        lambda: {
            f"{size}/{kind.type}": member_analyses(members=size, repeats=1, device=kind, by_member=size <= 100)
            for size in members
            for kind in kinds
        },
    )
    return merge_record(out, docs=docs)


def merge_record(path: Path, *, docs: Path = DOCS) -> dict:
    """The record at ``path`` (whole, or as far as it got) as docs/benchmarks.json's ``gpu`` section, page redrawn."""
    record = json.loads(path.read_text())
    everything = read_benchmarks(docs)
    everything["gpu"] = record
    write_benchmarks(everything, docs=docs)
    print(f"{path} is now the gpu section of {docs / 'benchmarks.json'}; {docs / 'benchmarks.md'} redrawn", flush=True)
    return record


def _fc_epoch(device: torch.device, *, repeats: int, log_dir: str) -> dict[str, float]:
    """configs/fc.yaml's model: one MNIST epoch in each loop on ``device``, seconds (best of ``repeats``)."""
    data = ZooDataModule("mnist", batch_size=128)
    data.setup("fit")
    best = best_of_alternating(
        epoch_runs(shipped_model("fc.yaml"), data, device=device, log_dir=log_dir, bare=True), repeats
    )
    print(
        f"fc.yaml on {device.type}: zoo {best['zoo']:.2f} s/epoch, plain {best['plain']:.2f}, "
        f"bare Lightning {best['bare_lightning']:.2f}",
        flush=True,
    )
    return best
