"""``scripts/surgery.py {prune,compress,merge} CKPT... --out OUT.ckpt``: surgery on checkpoints, said in a few lines."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import torch

from zoo.analysis.units import DEAD_TOLERANCE
from zoo.checkpoints import load_model
from zoo.data import ZooDataModule
from zoo.errors import ZooError, exit_on_failure
from zoo.models import ZooModule
from zoo.surgery.compress import compress, compress_to_tolerance
from zoo.surgery.export import export, trained_on, training_recipe
from zoo.surgery.layout import metric, outputs_of
from zoo.surgery.merge import merge
from zoo.surgery.prune import PruneReport, prune_dead, varied_elsewhere

SPLITS = ("train", "val", "test")


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="surgery.py", description=__doc__)
    commands = parser.add_subparsers(dest="operation", required=True)
    prune = commands.add_parser("prune", help="remove the units that are dead on the judged split, exactly")
    prune.add_argument("checkpoint")
    prune.add_argument("--split", choices=SPLITS, default="train", help="the samples units are judged on")
    prune.add_argument("--dead-tolerance", type=float, default=DEAD_TOLERANCE, help="zoo.analysis.units' tolerance")
    prune.add_argument(
        "--approximate",
        action="store_true",
        help="also remove units dead by the definition that still vary a little (folded at their mean)",
    )
    squeeze = commands.add_parser("compress", help="project layers on their top-k principal components")
    squeeze.add_argument("checkpoint")
    how = squeeze.add_mutually_exclusive_group(required=True)
    how.add_argument("--k", action="append", metavar="LAYER=K", help="components to keep in LAYER (repeatable)")
    how.add_argument("--tolerance", type=float, help="largest drop of the task metric (0.01 = one accuracy point)")
    squeeze.add_argument("--split", choices=SPLITS, default="val", help="the samples k is chosen and judged on")
    join = commands.add_parser("merge", help="put networks with one output group each side by side")
    join.add_argument("checkpoints", nargs="+")
    join.add_argument("--split", choices=SPLITS, default="val", help="the samples the outputs are compared on")
    for command in (prune, squeeze, join):
        command.add_argument("--out", required=True, help="the new checkpoint; its config goes beside it as .yaml")
        command.add_argument("--data-dir", default=None, help="folder of the IDX files (default $ZOO_DATA_DIR)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    exit_on_failure(lambda: run(parser().parse_args(argv)), program="surgery")


def run(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    if out.suffix != ".ckpt":
        raise ZooError(f"--out must name a .ckpt file (its config is written beside it as .yaml), got {out}")
    sources = args.checkpoints if args.operation == "merge" else [args.checkpoint]
    if any(Path(source).resolve() == out.resolve() for source in sources):
        raise ZooError(f"--out {out} is a source checkpoint; surgery writes a new file and never replaces its source")
    for option in ("tolerance", "dead_tolerance"):
        value = getattr(args, option, None)
        if value is not None and not value >= 0:  # NaN fails this too
            raise ZooError(f"--{option.replace('_', '-')} must be a number ≥ 0, got {value}")
    with torch.no_grad():  # a block, not a global switch: main() also runs inside other programs (tests, notebooks)
        if args.operation == "merge":
            return _merge(args, out)
        model, data = _source(args.checkpoint, args.data_dir)
        if args.operation == "prune":
            return _prune(args, out, model, data)
        return _compress(args, out, model, data)


def _source(path: str, data_dir: str | None) -> tuple[ZooModule, ZooDataModule]:
    """A checkpoint's model, in eval mode, and the data it was trained on."""
    data = trained_on(path, data_dir)
    return load_model(path).eval(), data


def _prune(args: argparse.Namespace, out: Path, model: ZooModule, data: ZooDataModule) -> Path:
    inputs, targets = data.split(args.split)
    pruned, report = prune_dead(model, inputs, tolerance=args.dead_tolerance, exact=not args.approximate)
    print(f"pruned {args.checkpoint}: units judged on {args.split} ({len(inputs):,} samples)")
    for layer, (before, after) in report.widths.items():
        kept = " (all dead: one kept, it carries the constant)" if layer in report.kept_dead else ""
        print(f"  {layer}: {len(report.removed[layer])} of {before} units dead and removed, {after} left{kept}")
        if report.kept_varying.get(layer):
            varying = len(report.kept_varying[layer])
            print(f"    kept {varying} more, dead by zoo's definition but not constant (--approximate removes them)")
    _parameters(report.parameters_before, report.parameters_after)
    for split in dict.fromkeys([args.split, "test"]):
        _compare(model, pruned, *data.split(split), split)
    _fired(model, report, data.split("test")[0])
    record = {"operation": "prune", "sources": [args.checkpoint], "split": args.split, "removed": report.removed}
    record["exact"] = not args.approximate
    return _write(pruned, out, data, record)


def _fired(model: ZooModule, report: PruneReport, inputs: torch.Tensor) -> None:
    """Say which removed units are not constant on the test split: there the pruned network differs."""
    for layer, (units, samples) in varied_elsewhere(model, report, inputs).items():
        if units:
            varied = f"{units} of the {len(report.removed[layer])} units removed from {layer}"
            print(f"  test: {varied} are not constant there ({samples:,} samples): the pruned network differs")


def _compress(args: argparse.Namespace, out: Path, model: ZooModule, data: ZooDataModule) -> Path:
    inputs, targets = data.split(args.split)
    if args.tolerance is not None:
        compressed, report = compress_to_tolerance(model, inputs, targets, args.tolerance)
        print(f"compressed {args.checkpoint}: k per layer chosen on {args.split} ({len(inputs):,} samples),")
        print(f"  the smallest that keep the {report.metric} within {args.tolerance:g} of {report.before:.4f}")
        for layer, width in report.widths.items():
            if layer in report.k:
                predicted = report.predicted[layer]
                print(f"  {layer}: {width} units -> k = {report.k[layer]} (analysis predicted {predicted:.4f})")
            elif layer in report.not_smaller:
                k = report.not_smaller[layer]
                print(f"  {layer}: {width} units, left whole (k = {k} keeps the metric, but would not save weights)")
            else:
                print(f"  {layer}: {width} units, left whole (no smaller k keeps the metric)")
        ks = report.k
    else:
        ks, compressed = dict(_layer_k(item) for item in args.k), model
        for layer, k in ks.items():  # every k checked before a word is said
            compressed = compress(compressed, inputs, layer, k)
        print(f"compressed {args.checkpoint}: principal axes of {args.split} ({len(inputs):,} samples)")
        for layer, k in ks.items():
            print(f"  {layer}: {model.probes[layer].units} units -> k = {k}")
    _parameters(model.parameter_counts(), compressed.parameter_counts())
    for split in dict.fromkeys([args.split, "test"]):
        _compare(model, compressed, *data.split(split), split)
    record = {"operation": "compress", "sources": [args.checkpoint], "split": args.split, "k": ks}
    return _write(compressed, out, data, record | ({"tolerance": args.tolerance} if args.tolerance is not None else {}))


def _layer_k(text: str) -> tuple[str, int]:
    layer, _, k = text.partition("=")
    if not k.isdigit():
        raise ZooError(f"--k takes LAYER=K with K a positive integer, e.g. fc1=16; got {text!r}")
    return layer, int(k)


def _merge(args: argparse.Namespace, out: Path) -> Path:
    sources = [_source(path, args.data_dir) for path in args.checkpoints]
    models = [model for model, _ in sources]
    hparams = [dict(data.hparams) for _, data in sources]
    for index, other in enumerate(hparams[1:], start=1):  # outputs are what merging puts side by side
        changed = [key for key in sources[0][1].differences(other) if key != "outputs"]
        if changed:
            values = "; ".join(f"{key} {hparams[0].get(key)!r} and {other.get(key)!r}" for key in changed)
            raise ZooError(
                f"merged networks must come from the same data (dataset, seed, samples, normalization): "
                f"{args.checkpoints[0]} and {args.checkpoints[index]} differ in {values}"
            )
    outputs = [index for h, data in zip(hparams, (d for _, d in sources)) for index in _outputs(h, data)]
    merged = merge(models)
    data = ZooDataModule(**{**hparams[0], "outputs": outputs, "data_dir": args.data_dir or hparams[0].get("data_dir")})
    inputs, targets = data.split(args.split)
    apart = torch.cat([outputs_of(model, inputs) for model in models], dim=-1)  # a population's: (members, N, out)
    together = outputs_of(merged, inputs)
    widths = " + ".join(str(_hidden(model)) for model in models)
    print(f"merged {', '.join(args.checkpoints)}: hidden {widths} -> {_hidden(merged)}")
    print(f"  outputs: {', '.join(data.output_names)} (data.outputs {outputs})")
    before = sum(m.parameter_counts()["nonzero"] for m in models)
    after = merged.parameter_counts()["nonzero"]
    print(f"  parameters: {before:,} -> {after:,} (the blocks between sources start at zero, free to learn)")
    name, value = _metric(merged, together, targets)
    delta = (together - apart).abs().max()
    print(f"  {args.split}: largest |Δ output| against the sources {delta:.3g}; {name} {value:.4f}")
    record = {"operation": "merge", "sources": args.checkpoints, "outputs": outputs}
    return _write(merged, out, data, record)


def _hidden(model: ZooModule) -> list[int]:
    """Hidden widths of an FCNet, or of a population's members."""
    return list((model.hparams.get("member") or model.hparams)["hidden"])


def _metric(model: ZooModule, outputs: torch.Tensor, targets: torch.Tensor) -> tuple[str, float]:
    """The task metric; a population's is its members' mean."""
    if outputs.ndim == 2:
        return metric(model, outputs, targets)
    scores = [metric(model, member, targets) for member in outputs]
    return f"mean {scores[0][0]} over {len(scores)} members", sum(score for _, score in scores) / len(scores)


def _outputs(hparams: dict, data: ZooDataModule) -> list[int]:
    return list(hparams.get("outputs") or range(data.info.num_outputs))


def _parameters(before: dict[str, int], after: dict[str, int]) -> None:
    print(f"  parameters: {before['nonzero']:,} -> {after['nonzero']:,} nonzero")


def _compare(model: ZooModule, edited: ZooModule, inputs: torch.Tensor, targets: torch.Tensor, split: str) -> None:
    before, after = outputs_of(model, inputs), outputs_of(edited, inputs)
    name, old = metric(model, before, targets)
    new = metric(edited, after, targets)[1]
    delta = (after - before).abs().max()
    print(f"  {split}: {name} {old:.4f} -> {new:.4f}, largest |Δ output| {delta:.3g} ({len(inputs):,} samples)")


def _write(model: ZooModule, out: Path, data: ZooDataModule, record: dict) -> Path:
    recipe = training_recipe(record["sources"][0])  # a merge trains on as its first source was trained
    checkpoint, config = export(model, out, data=dict(data.hparams), record=record, recipe=recipe)
    print(f"wrote {checkpoint} and {config}")
    return checkpoint
