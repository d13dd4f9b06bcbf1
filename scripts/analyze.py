"""Run an analysis on a saved checkpoint: the JSON and figures a run writes, and a short table.

    python scripts/analyze.py task-separation lightning_logs/fc/version_0/checkpoints/best.ckpt
    python scripts/analyze.py activations CKPT --split train --max-samples 10000 --out analysed/

Every registered analysis is a subcommand, with its declared options (``zoo.analyses``).
The checkpoint alone says which architecture and data to rebuild; data files are found as
for training (``--data-dir``, else ``$ZOO_DATA_DIR``, else ./data). Files go to
``<out>/<analysis>/`` (default ``<run folder>/analysis_<checkpoint name>/``, or beside a checkpoint
outside a run folder), named as a run names them at the checkpoint's epoch (a surgery
checkpoint's by its operation: ``epoch_prune.json``, figures titled "after prune"). A
population's checkpoint is analysed member by member (``member_<i>/``, figures of member 0,
as a run does), or one member with ``--member``.
Both analyses judge dead units on the data they are given: ``--split train`` (the default)
is where a unit that never varies really never learns.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import typing
from pathlib import Path

import torch

from zoo import ZooDataModule, load_model
from zoo.analyses import Analysis, Samples, list_analyses
from zoo.callbacks.schedule import epoch_label
from zoo.checkpoints import model_class, read_checkpoint
from zoo.errors import count, exit_on_failure
from zoo.io import write_json
from zoo.runs import run_folder_of
from zoo.writer import AnalysisWriter


def run(args: argparse.Namespace) -> None:
    analysis: Analysis = args.declaration
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    checkpoint = read_checkpoint(args.checkpoint)
    epoch = checkpoint["epoch"]
    operation = (checkpoint.get("surgery") or {}).get("operation")  # its epoch is 0: named by what made it instead
    model = load_model(args.checkpoint, member=args.member).to(device)
    data = ZooDataModule.load_from_checkpoint(args.checkpoint, **({"data_dir": args.data_dir} if args.data_dir else {}))
    samples = Samples.of(data, args.split, args.max_samples)
    options = analysis.options(
        **{field.name: getattr(args, field.name) for field in dataclasses.fields(analysis.options)}
    )
    folder = Path(args.out) if args.out else _default_out(args.checkpoint)
    members = list(model.members())
    population = members[0] is not model
    tensorboard = _tensorboard(args.tensorboard)
    print(f"{type(members[0]).__name__} on {len(samples.inputs):,} {data.info.name} {args.split} samples ({device})")
    results = analysis.run_each_member(model, samples, options, layers=args.layers, cache={})  # batched if it can
    one_member = args.member is not None and model_class(checkpoint, args.checkpoint).kind == "population"
    for index, result in enumerate(results):  # a single model is its own member 0: its results go where a run's go
        where = folder / analysis.name / f"member_{args.member:03d}" if one_member else folder / analysis.name
        writer = AnalysisWriter(
            where,
            prefix=analysis.name,
            label=operation or epoch_label(epoch),
            step=epoch,
            tensorboard=tensorboard,
            member=index if population else None,
            when=f"after {operation}" if operation else None,
        )
        written = writer.write(analysis, result, epoch=epoch)
        if population:
            print(f"\nmember {index}:")
        print("\n" + analysis.describe(result))
        print(f"\nwrote {written} (and its figures)" if writer.draws else f"\nwrote {written}")
        if args.json:
            print(f"wrote {write_json(args.json if not population else _member_path(args.json, index), result)}")
    if tensorboard is not None:
        tensorboard.close()


def _default_out(checkpoint: str) -> Path:
    """``analysis_<name>/`` in the checkpoint's run folder, or beside a checkpoint outside one (surgery's): never
    the working folder, where two checkpoints of one name from two places would share it."""
    return (run_folder_of(checkpoint) or Path(checkpoint).resolve().parent) / f"analysis_{Path(checkpoint).stem}"


def _member_path(path: str, index: int) -> Path:
    path = Path(path)
    return path.with_name(f"{path.stem}_member_{index:03d}{path.suffix}")


def _tensorboard(folder: str | None):
    if folder is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(folder)


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}")
    return int(text)


def _add_options(command: argparse.ArgumentParser, analysis: Analysis) -> None:
    """One flag per declared option, typed, with its default and what its options class says of it."""
    hints = typing.get_type_hints(analysis.options)
    said = _option_help(analysis.options)
    for field in dataclasses.fields(analysis.options):
        kind = hints[field.name]
        flag = f"--{field.name.replace('_', '-')}"
        text = f"{said[field.name]} (default {field.default})" if field.name in said else f"(default {field.default})"
        if typing.get_origin(kind) is typing.Literal:
            command.add_argument(flag, dest=field.name, choices=typing.get_args(kind), default=field.default, help=text)
        elif kind is bool:
            command.add_argument(
                flag, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default, help=text
            )
        else:
            parse = _whole if kind is int else kind
            command.add_argument(flag, dest=field.name, type=parse, default=field.default, help=text)


def _option_help(options: type) -> dict[str, str]:
    """``{name: text}`` from the ``name: text`` paragraph that opens an options class's docstring.

    The options are documented once, where they are declared (``threshold: attribution share ...``);
    a class without such lines gets only the defaults in ``--help``.
    """
    paragraph = (inspect.getdoc(options) or "").split("\n\n")[0]
    names = {field.name for field in dataclasses.fields(options)}
    said: dict[str, str] = {}
    current = None
    for line in paragraph.splitlines():
        name, colon, text = line.partition(":")
        if colon and name.strip() in names:
            current = name.strip()
            said[current] = text.strip()
        elif current is not None:
            said[current] += " " + line.strip()
    return {name: text.rstrip(".") for name, text in said.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="analysis", required=True)
    for analysis in list_analyses():
        command = commands.add_parser(analysis.name.replace("_", "-"), help=analysis.title)
        command.set_defaults(declaration=analysis)
        command.add_argument("checkpoint", help="a zoo checkpoint; it says which model and data to rebuild")
        command.add_argument(
            "--split",
            choices=["train", "val", "test"],
            default="train",
            help="the samples the analysis runs on, and dead units are judged on (default train)",
        )
        command.add_argument(
            "--max-samples",
            type=count,
            default=10_000,
            metavar="N",
            help="analyse the first N samples of the split, at least 1 (default %(default)s)",
        )
        command.add_argument("--layers", nargs="+", default=None, help="hidden layers to analyse (default: all)")
        command.add_argument("--member", type=_whole, default=None, help="of a population: this member only")
        command.add_argument("--out", default=None, help="folder for <analysis>/ (default <run>/analysis_<ckpt>/)")
        command.add_argument("--tensorboard", default=None, help="also log to TensorBoard in this folder")
        command.add_argument(
            "--data-dir", default=None, help="folder of the data files (default $ZOO_DATA_DIR, else ./data)"
        )
        command.add_argument("--json", default=None, help="also write the full result to this JSON file")
        command.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
        _add_options(command, analysis)
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="analyze")


if __name__ == "__main__":
    main()
