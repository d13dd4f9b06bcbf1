"""Run an analysis on a saved checkpoint and print a short table.

    python scripts/analyze.py task-separation lightning_logs/fc/version_0/checkpoints/best.ckpt
    python scripts/analyze.py activations CKPT --split train --max-samples 10000 --json result.json

The checkpoint alone says which architecture and data to rebuild; data files
are found as for training (``--data-dir``, else ``$ZOO_DATA_DIR``, else ./data).
Both analyses judge dead units on the data they are given: ``--split train``
(the default) is where a unit that never varies really never learns.
"""

from __future__ import annotations

import argparse

import torch

from zoo import ZooDataModule, load_model
from zoo.analysis import activation_analysis, task_separation
from zoo.analysis.task_separation import ORTHOGONAL
from zoo.errors import exit_on_failure
from zoo.io import write_json


def run(args: argparse.Namespace) -> None:
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    model = load_model(args.checkpoint).to(device)
    data = ZooDataModule.load_from_checkpoint(args.checkpoint, **({"data_dir": args.data_dir} if args.data_dir else {}))
    inputs, targets = (t[: args.max_samples] for t in data.split(args.split))
    names = list(data.output_names)
    print(f"{type(model).__name__} on {len(inputs):,} {data.info.name} {args.split} samples ({device})")
    if args.analysis == "task-separation":
        result = task_separation(model, inputs, targets, names, args.layers, args.threshold, data=args.split)
        print_task_separation(result)
    else:
        result = activation_analysis(model, inputs, targets, names, args.layers, maximize=0, data=args.split)
        for stats in result.layers.values():
            print("\n" + stats.report)
    if args.json:
        print(f"\nwrote {write_json(args.json, result)}")


def print_task_separation(result) -> None:
    print(f"  mean interference   {result.mean_interference:+.3f}  (cosine of task gradients, mean over pairs)")
    print(f"  conflict fraction   {result.conflict_fraction:.3f}   (task pairs with negative cosine)")
    print(f"  orthogonal pairs    {result.orthogonal_fraction:.3f}   (|a·∂y/∂a| cosine ≤ {ORTHOGONAL})")
    print(f"  signed orthogonal   {result.signed_orthogonal_fraction:.3f}   (a·∂y/∂a cosine within ±{ORTHOGONAL})")
    if result.absent_outputs:
        print(f"  absent from the data: {', '.join(result.absent_outputs)}")
    print(f"\n  {'layer':<24}{'units':>7}{'mono':>8}{'shared':>8}{'dead':>8}{'special.':>10}")
    for layer, roles in {**result.roles, **result.column_roles}.items():
        fractions = f"{roles.mono_fraction:>8.1%}{roles.shared_fraction:>8.1%}{roles.dead_fraction:>8.1%}"
        print(f"  {layer:<24}{roles.units:>7}{fractions}{roles.specialization:>10.3f}")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="analysis", required=True)
    separation = commands.add_parser("task-separation", help="interference, attribution, neuron roles, orthogonality")
    activations = commands.add_parser("activations", help="dead, selective and redundant units, in plain words")
    for command in (separation, activations):
        command.add_argument("checkpoint")
        command.add_argument("--split", choices=["train", "val", "test"], default="train")
        command.add_argument("--max-samples", type=_positive, default=10_000)
        command.add_argument("--layers", nargs="+", default=None, help="hidden layers to analyse (default: all)")
        command.add_argument("--data-dir", default=None)
        command.add_argument("--json", default=None, help="also write the full result to this JSON file")
        command.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    separation.add_argument("--threshold", type=float, default=0.9, help="attribution share of a mono-functional unit")
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="analyze")


if __name__ == "__main__":
    main()
