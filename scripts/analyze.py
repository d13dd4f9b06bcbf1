"""Run an analysis on a saved checkpoint and print a short table.

    python scripts/analyze.py task-separation lightning_logs/fc/version_0/checkpoints/best.ckpt
    python scripts/analyze.py task-separation CKPT --split test --max-samples 10000 --json result.json

The checkpoint alone says which architecture and data to rebuild; data files
are found as for training (``--data-dir``, else ``$ZOO_DATA_DIR``, else ./data).
"""

from __future__ import annotations

import argparse
import sys

import torch

from zoo import ZooDataModule, ZooError, load_model
from zoo.analysis import task_separation
from zoo.io import write_json


def run_task_separation(args: argparse.Namespace) -> None:
    device = "cuda" if torch.cuda.is_available() and not args.cpu else "cpu"
    model = load_model(args.checkpoint).to(device)
    data = ZooDataModule.load_from_checkpoint(args.checkpoint, **({"data_dir": args.data_dir} if args.data_dir else {}))
    inputs, targets = (t[: args.max_samples] for t in data.split(args.split))
    result = task_separation(
        model, inputs, targets, output_names=list(data.output_names), layers=args.layers, threshold=args.threshold
    )

    print(f"{type(model).__name__} on {len(inputs)} {data.info.name} {args.split} samples ({device})")
    print(f"  mean interference  {result.mean_interference:+.3f}   (cosine of task gradients, off-diagonal mean)")
    print(f"  conflict fraction  {result.conflict_fraction:.3f}    (task pairs with negative cosine)")
    print(
        f"  orthogonal pairs   {result.orthogonal_fraction:.3f}    (output pairs with |cosine of attribution| <= 0.05)"
    )
    print(f"\n  {'layer':<24}{'units':>7}{'mono':>8}{'shared':>8}{'dead':>8}")
    for layer, roles in {**result.roles, **result.column_roles}.items():
        fractions = f"{roles.mono_fraction:>8.1%}{roles.shared_fraction:>8.1%}{roles.dead_fraction:>8.1%}"
        print(f"  {layer:<24}{roles.units:>7}{fractions}")
    if args.json:
        print(f"\nwrote {write_json(args.json, result)}")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text!r}")
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="analysis", required=True)
    separation = commands.add_parser("task-separation", help="interference, attribution, neuron roles, orthogonality")
    separation.add_argument("checkpoint")
    separation.add_argument("--split", choices=["train", "val", "test"], default="test")
    separation.add_argument("--max-samples", type=_positive, default=10_000)
    separation.add_argument("--layers", nargs="+", default=None, help="hidden layers to attribute (default: all)")
    separation.add_argument(
        "--threshold", type=float, default=0.9, help="attribution share of a mono-functional neuron"
    )
    separation.add_argument("--data-dir", default=None)
    separation.add_argument("--json", default=None, help="also write the full result to this JSON file")
    separation.add_argument("--cpu", action="store_true", help="stay on the CPU even when a GPU is present")
    args = parser.parse_args()
    try:
        run_task_separation(args)
    except ZooError as error:
        print(f"analyze: error: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
