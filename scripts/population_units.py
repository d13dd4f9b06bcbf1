"""Dead units and class preferences across a population's members, on one split.

    python scripts/population_units.py lightning_logs/six/version_0/checkpoints/last.ckpt --layer fc1

Each member goes through the activation analysis (zoo.analysis.activation_analysis: the one
"dead" definition, class profiles); this prints the distribution of dead units per member and,
for every live unit, the classes it responds to most (largest class-mean activation).
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from zoo import ZooDataModule, load_model
from zoo.analysis import activation_analysis
from zoo.errors import exit_on_failure


def run(args: argparse.Namespace) -> None:
    population = load_model(args.checkpoint)
    data = ZooDataModule.load_from_checkpoint(args.checkpoint, **({"data_dir": args.data_dir} if args.data_dir else {}))
    inputs, targets = data.split(args.split)
    names = list(data.output_names)
    dead_counts, top_sets, firsts, lines = Counter(), Counter(), Counter(), []
    torch.set_grad_enabled(False)
    for index, member in enumerate(population.members()):
        layer = activation_analysis(member, inputs, targets, names, layers=[args.layer], maximize=0, data=args.split)
        stats = layer.layers[args.layer]
        dead_counts[len(stats.dead)] += 1
        live = [unit for unit in range(stats.units) if unit not in stats.dead]
        preferred = []
        for unit in live:
            order = stats.class_profile[unit].argsort(descending=True)[: args.top].tolist()
            top_sets[tuple(sorted(names[c] for c in order))] += 1
            firsts[names[order[0]]] += 1
            preferred.append("".join(names[c] for c in order))
        lines.append(f"  member {index:>3}: {len(stats.dead)} dead, live units prefer {' '.join(preferred) or '-'}")
    members = sum(dead_counts.values())
    print(f"{members} members, {args.layer}, judged on {len(inputs):,} {args.split} samples")
    print("dead units per member: " + ", ".join(f"{k} dead: {n}" for k, n in sorted(dead_counts.items())))
    live_units = sum(firsts.values())
    print(f"{live_units} live units; most preferred class: " + ", ".join(f"{c} {n}" for c, n in firsts.most_common()))
    common = ", ".join(f"{''.join(classes)} {n}" for classes, n in top_sets.most_common(8))
    print(f"top-{args.top} class sets, most common: {common}")
    if args.classes:
        wanted = tuple(sorted(args.classes))
        print(f"live units whose top {args.top} classes are {''.join(wanted)}: {top_sets[wanted]} of {live_units}")
    if args.verbose:
        print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a population's checkpoint (--population N)")
    parser.add_argument("--layer", default="fc1")
    parser.add_argument("--split", choices=["train", "val", "test"], default="train")
    parser.add_argument("--top", type=int, default=3, help="how many preferred classes to name per unit")
    parser.add_argument("--classes", nargs="+", default=None, help="count the live units whose top classes are these")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--verbose", action="store_true", help="one line per member")
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="population_units")


if __name__ == "__main__":
    main()
