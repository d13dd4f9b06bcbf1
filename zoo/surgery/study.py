"""How small can a study's networks get: each seed pruned and compressed, beside SparseNet and SET of that size.

    python scripts/how_small.py sweeps/runs/how_small [--tolerances 0.001 0.003 0.01] [--epochs N] [--jobs N]

For every finished trial of a sweep's study (its rows, as the sweep engine records them), the
best checkpoint is pruned exactly (units constant on the training split) and the pruned network
compressed at each tolerance (k per layer chosen on the validation split; the test split only
reported). Then SparseNet with the FCNet's hidden widths, at the density whose nonzero parameter
count is the compressed FCNets' mean, trains on the same data, epochs and seeds, once with its
fixed random topology and once with SET: a sweep of its own, its spec written next to its results.

Everything lands under ``STUDY/how_small/`` (per trial: ``surgery.json`` and the pruned and
compressed checkpoints; per matched size: the SparseNet sweep), so a rerun does only what is
missing; ``how_small.csv``, ``how_small.md`` and ``how_small.png`` are written into the study folder.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from zoo.checkpoints import load_model
from zoo.data import ZooDataModule
from zoo.errors import ZooError, exit_on_failure
from zoo.io import write_json, write_text
from zoo.models import FCNet, SparseNet, ZooModule
from zoo.surgery.compress import compress_to_tolerance
from zoo.surgery.export import export, plain, trained_on
from zoo.surgery.layout import init_arguments, metric, outputs_of
from zoo.surgery.prune import prune_dead, varied_elsewhere
from zoo.sweep import read_rows, read_sweep, run_sweep
from zoo.sweep.summary import configurations

TOLERANCES = (0.001, 0.003, 0.01)
SPARSE_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "sparsenet.yaml"  # the shipped SparseNet recipe
FOLDER = "how_small"  # inside the study folder
FIXED, SET = "SparseNet, fixed topology", "SparseNet, SET"
SET_ZETA = 0.3  # as configs/set.yaml
DENSE_ENOUGH = 0.3  # above this density SparseNet trains with its masked backend
SET_SHARE = 0.75  # SET rewires until 3/4 of the epochs, as configs/set.yaml (30 of 40)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="how_small.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="a sweep's output folder (its study.db), e.g. sweeps/runs/how_small")
    parser.add_argument(
        "--tolerances",
        type=float,
        nargs="+",
        default=list(TOLERANCES),
        help="largest drops of the task metric on the validation split (0.01 = one accuracy point)",
    )
    parser.add_argument("--epochs", type=int, default=None, help="SparseNet's epochs (default: the FCNet trials')")
    parser.add_argument("--jobs", type=int, default=1, help="workers of the SparseNet sweep here")
    parser.add_argument(
        "--sparse-at",
        choices=("loosest", "every", "none"),
        default="loosest",
        help="train SparseNet and SET at the FCNet's size for the loosest tolerance, every tolerance, or none",
    )
    parser.add_argument(
        "--sparse-seeds", type=int, default=None, help="train SparseNet and SET on the first N seeds only (CPU budget)"
    )
    parser.add_argument("--sparse-config", default=str(SPARSE_CONFIG), help="the SparseNet recipe (optimizer, ...)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    exit_on_failure(lambda: run(parser().parse_args(argv)), program="how_small")


def run(args: argparse.Namespace, say: Callable[[str], None] = print) -> list[Path]:
    """The study's surgery, then the SparseNet sweeps, then the report; returns the report's files."""
    from zoo.surgery.study_report import write_report

    study = Path(args.study)
    if not study.is_dir():
        raise ZooError(f"{study}: no such folder; give a sweep's output folder (python scripts/sweep.py ...)")
    if not (study / "study.db").is_file():
        raise ZooError(f"{study} holds no study.db; give a sweep's output folder (python scripts/sweep.py ...)")
    if not args.tolerances or not all(math.isfinite(t) and t >= 0 for t in args.tolerances):
        raise ZooError(f"--tolerances must be numbers ≥ 0 (0.01 is one accuracy point), got {args.tolerances}")
    if args.epochs is not None and args.epochs < 1:
        raise ZooError(f"--epochs must be at least 1, got {args.epochs}")
    if args.jobs < 1:
        raise ZooError(f"--jobs must be at least 1, got {args.jobs}")
    if args.sparse_at != "none" and not Path(args.sparse_config).is_file():
        raise ZooError(f"--sparse-config {args.sparse_config} not found; give a SparseNet config, e.g. {SPARSE_CONFIG}")
    if args.sparse_seeds is not None and args.sparse_seeds < 1:
        raise ZooError(f"--sparse-seeds must be at least 1, got {args.sparse_seeds}")
    tolerances = sorted(set(args.tolerances))
    rows = read_rows(study)
    if not rows:
        raise ZooError(f"{study}: no trial of the study has finished yet; nothing to prune")
    with torch.no_grad():
        records = [
            trial_surgery(row, network, tolerances, study / FOLDER / "surgery" / row["trial"], say=say)
            for network, group in configurations(rows).items()
            for row in group
        ]
    written = write_report(study, records, [], tolerances)
    if args.sparse_at == "none":
        return written
    matched = tolerances if args.sparse_at == "every" else tolerances[-1:]
    sparse = []
    for tolerance in matched:
        sparse += matched_sparse(records, tolerance, study / FOLDER, args, say=say)
    return write_report(study, records, sparse, tolerances)


def stage_name(tolerance: float) -> str:
    """A tolerance's key in a trial's record and the CSV's ``stage`` column."""
    return f"compressed {tolerance:g}"


def trial_surgery(
    row: dict[str, Any], network: str, tolerances: list[float], folder: Path, *, say: Callable[[str], None] = print
) -> dict[str, Any]:
    """One trial's best checkpoint trained, pruned and compressed at each tolerance; kept in ``folder``.

    A record already there for the same checkpoint is used as it is; only the tolerances it lacks
    (or whose compression was not available when it was made) are computed, from its pruned network.
    """
    if int(row.get("batched") or 1) > 1:
        raise ZooError(f"trial {row['trial']} trained a batch of seeds; how_small.py takes trials of one seed each")
    checkpoint = Path(row["run_dir"]) / "checkpoints" / "best.ckpt"
    if not checkpoint.is_file():
        raise ZooError(f"trial {row['trial']}: {checkpoint} not found (its run folder is on host {row.get('host')})")
    cache = folder / "surgery.json"
    record = json.loads(cache.read_text()) if cache.is_file() else None
    if record is not None and record.get("checkpoint") != str(checkpoint):
        record = None  # the trial ran again: another checkpoint
    missing = [tolerance for tolerance in tolerances if not (record and _available(record, tolerance))]
    if record is not None:
        record["network"] = network  # as the study names it now
    if record is not None and not missing:
        return record
    data = trained_on(checkpoint)
    if record is None:
        say(f"{row['trial']}: pruning {checkpoint}")
        record = _keep(cache, _pruned(row, network, checkpoint, data, folder))
    pruned = load_model(folder / "pruned.ckpt").eval()
    inputs, targets = data.split("val")
    for tolerance in missing:
        stage = stage_name(tolerance)
        try:
            compressed, report = compress_to_tolerance(pruned, inputs, targets, tolerance)
        except ZooError as error:  # an architecture compression does not export (yet): said, not hidden
            record["stages"][stage] = {"available": False, "note": str(error)}
            continue
        say(f"{row['trial']}: compressed within {tolerance:g}, k {report.k or 'none'}")
        export(compressed, folder / f"{stage.replace(' ', '_')}.ckpt", data=dict(data.hparams), record={
            "operation": "compress", "sources": [str(folder / "pruned.ckpt")], "split": "val", "k": report.k,
            "tolerance": tolerance,
        })  # fmt: skip
        record["stages"][stage] = {
            **_scores(compressed, data),
            "k": report.k,
            "not_smaller": report.not_smaller,
            "predicted": report.predicted,
        }
    return _keep(cache, record)


def _keep(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """Keep a trial's record as soon as a step is done: an interrupted study resumes after it."""
    write_json(path, record)
    return record


def _scores(model: ZooModule, data: ZooDataModule) -> dict[str, Any]:
    """Nonzero parameters and the task metric on the validation and test splits."""
    scores: dict[str, Any] = {"available": True, "params_nonzero": model.parameter_counts()["nonzero"]}
    for split in ("val", "test"):
        inputs, targets = data.split(split)
        scores[split] = metric(model, outputs_of(model, inputs), targets)[1]
    return scores


def _pruned(row: dict[str, Any], network: str, checkpoint: Path, data: ZooDataModule, folder: Path) -> dict[str, Any]:
    """The trained and the exactly pruned network's numbers; the pruned one exported to ``folder``."""
    model = load_model(checkpoint).eval()
    inputs, _ = data.split("train")
    pruned, report = prune_dead(model, inputs)
    export(pruned, folder / "pruned.ckpt", data=dict(data.hparams), record={
        "operation": "prune", "sources": [str(checkpoint)], "split": "train", "removed": report.removed, "exact": True,
    })  # fmt: skip
    deltas = {}
    for split in ("train", "test"):
        x = data.split(split)[0]
        deltas[split] = float((outputs_of(pruned, x) - outputs_of(model, x)).abs().max())
    varied = varied_elsewhere(model, report, data.split("test")[0])
    return {
        "trial": row["trial"],
        "network": network,
        "seed": int(row["seed"]),
        "checkpoint": str(checkpoint),
        "architecture": type(model).__name__,
        "metric": row["metric"],
        "hidden": list(model.hparams.get("hidden") or []),
        "data": plain(dict(data.hparams)),
        "judged_samples": len(inputs),
        "stages": {
            "trained": _scores(model, data),
            "pruned": {
                **_scores(pruned, data),
                "removed": {layer: len(units) for layer, units in report.removed.items()},
                "widths": {layer: list(widths) for layer, widths in report.widths.items()},
                "max_delta_judged": deltas["train"],
                "max_delta_test": deltas["test"],
                "varied_test": {layer: list(counts) for layer, counts in varied.items()},
            },
        },
    }


def sparse_target(records: list[dict[str, Any]], tolerance: float) -> tuple[str, int, list[dict[str, Any]]] | None:
    """The FCNet network, its compressed mean nonzero count at ``tolerance`` (rounded), and its records."""
    networks = sorted({record["network"] for record in records if record["architecture"] == FCNet.__name__})
    if not networks:
        return None
    if len(networks) > 1:
        raise ZooError(f"SparseNet is matched to one FCNet network; the study has {len(networks)}: {networks}")
    fc = [record for record in records if record["network"] == networks[0]]
    counts = [r["stages"][stage_name(tolerance)]["params_nonzero"] for r in fc if _available(r, tolerance)]
    if not counts:
        return None
    return networks[0], round(statistics.fmean(counts)), fc


def _available(record: dict[str, Any], tolerance: float) -> bool:
    return record["stages"].get(stage_name(tolerance), {}).get("available", False)


def density_for(count: int, build: Callable[[float], ZooModule], *, resolution: int = 10**7) -> tuple[float, int]:
    """The density (a multiple of 1/``resolution``) whose built model's nonzero count is nearest ``count``.

    Bisection over built models (the count is what the layers really hold, biases and the dense head
    included), not a formula.
    """

    def counted(steps: int) -> int:
        return build(steps / resolution).parameter_counts()["nonzero"]

    low, high = 1, resolution
    if counted(low) >= count:
        return low / resolution, counted(low)
    while high - low > 1:  # counted(low) < count <= counted(high)
        middle = (low + high) // 2
        if counted(middle) < count:
            low = middle
        else:
            high = middle
    best = min((low, high), key=lambda steps: abs(counted(steps) - count))
    return best / resolution, counted(best)


def matched_sparse(
    records: list[dict[str, Any]],
    tolerance: float,
    folder: Path,
    args: argparse.Namespace,
    *,
    say: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """SparseNet (fixed topology and SET) at the FCNet's compressed size, as a sweep; its rows, labelled."""
    found = sparse_target(records, tolerance)
    if found is None:
        say(f"no FCNet compressed within {tolerance:g}: no SparseNet to match")
        return []
    network, target, fc = found
    template = fc[0]
    model = load_model(template["checkpoint"])
    base = yaml.safe_load(Path(args.sparse_config).read_text())["model"]
    if not str(base.get("class_path", "")).endswith(SparseNet.__name__):
        raise ZooError(f"--sparse-config {args.sparse_config} must build a SparseNet, not {base.get('class_path')}")
    shape = {
        "hidden": template["hidden"],
        "activation": model.hparams["activation"],
        "dropout": float(model.hparams.get("dropout") or 0.0),
    }
    fixed = {"input_shape": model.hparams["input_shape"], "num_outputs": model.num_outputs, "task": model.task}
    settings = {**(base.get("init_args") or {}), **shape, **fixed}

    def build(density: float) -> SparseNet:
        return SparseNet(**init_arguments(SparseNet, {**settings, "density": density, "epsilon": None}))

    density, count = density_for(target, build)
    if density > DENSE_ENOUGH:  # the same network, computed faster (docs/sparse.md: above ~30% a dense product wins)
        shape["backend"] = "masked"
        settings["backend"] = "masked"
        count = build(density).parameter_counts()["nonzero"]
    training = _training(template["checkpoint"], args.epochs)
    epochs = training["trainer.max_epochs"]
    seeds = sorted(record["seed"] for record in fc)[: args.sparse_seeds]
    backend = settings.get("backend")
    say(f"SparseNet {shape['hidden']} at density {density:.7f} ({backend} backend): {count:,} nonzero parameters "
        f"({network} within {tolerance:g}: {target:,}); {epochs} epochs, seeds {seeds}")  # fmt: skip
    rewiring = {"zeta": SET_ZETA, "every_n_epochs": 1, "until_epoch": max(1, int(SET_SHARE * epochs))}
    common = {
        **training,
        **({"model.init_args.epsilon": None} if "epsilon" in (base.get("init_args") or {}) else {}),
        **{f"model.init_args.{key}": value for key, value in shape.items()},
        **{f"data.{key}": value for key, value in template["data"].items() if value is not None},
    }
    spec = {
        "seeds": seeds,
        "common": common,
        "trials": [
            {"config": str(args.sparse_config), "name": name, "grid": {
                "model.init_args.density": [density],
                "trainer.callbacks": [callbacks],
            }}
            for name, callbacks in (
                (FIXED, None),
                (SET, [{"class_path": "zoo.callbacks.SET", "init_args": rewiring}]),
            )
        ],
    }  # fmt: skip
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:8]
    output = folder / f"sparse-{target}-{digest}"
    path = write_text(output / "sweep.yaml", _spec_text(spec, network, tolerance, target))
    rows = run_sweep(read_sweep(path), output, args.jobs, say=say)
    return [
        {
            **row,
            "network": row["family"],
            "matched": tolerance,
            "target_params": target,
            "density": density,
        }
        for row in rows
    ]


TRAINING_LIMITS = {"limit_train_batches": (None, 1.0), "max_steps": (None, -1), "accumulate_grad_batches": (None, 1)}
"""Trainer settings that change how much a trial trains besides its epochs, and their values that change nothing."""


def _training(checkpoint: str, epochs: int | None) -> dict[str, Any]:
    """How long the trial trained, as sweep settings from the config its run saved: ``trainer.max_epochs`` (or
    ``epochs``) and the ``TRAINING_LIMITS`` it set, so that the SparseNets train on as much of the data as the
    networks they are compared with."""
    config = Path(checkpoint).parents[1] / "config.yaml"
    if not config.is_file():
        if not epochs:
            raise ZooError(f"{config} not found: give --epochs")
        return {"trainer.max_epochs": epochs}
    trainer = (yaml.safe_load(config.read_text()) or {}).get("trainer") or {}
    limits = {f"trainer.{key}": trainer[key] for key, same in TRAINING_LIMITS.items() if trainer.get(key) not in same}
    return {"trainer.max_epochs": epochs or int(trainer["max_epochs"]), **limits}


def _spec_text(spec: dict[str, Any], network: str, tolerance: float, target: int) -> str:
    header = (
        f"# Written by scripts/how_small.py: SparseNet with {network}'s hidden widths at its mean nonzero\n"
        f"# parameter count compressed within {tolerance:g} ({target:,}), fixed topology and SET; rerun to resume.\n"
    )
    return header + yaml.safe_dump(spec, sort_keys=False)
