"""Dead units and class preferences across a population's members, on one split.

    python scripts/population_units.py lightning_logs/six/version_0/checkpoints/last.ckpt --layer fc1

Each member goes through the activation analysis (zoo.analysis.activation_analysis: the one
"dead" definition, class profiles); this prints how many members have how many dead units
and, for every live unit of a classifier, the classes it responds to most (largest
class-mean activation), counted over all members. Classes are the data's class indices
(MNIST: 0 to 9), shown with their names where those differ from the index.

A regression population (multimult) has no classes: its dead units are counted all the
same, and the class preferences are left out with a line that says why (``--classes`` is
refused there).
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from zoo import ZooDataModule, load_model
from zoo.analysis import activation_analysis
from zoo.errors import ZooError, count, exit_on_failure


def run(args: argparse.Namespace) -> None:
    population = load_model(args.checkpoint)
    data = ZooDataModule.load_from_checkpoint(args.checkpoint, **({"data_dir": args.data_dir} if args.data_dir else {}))
    names = list(data.output_names)
    classified = data.info.task == "classification"
    if not classified and args.classes:
        outputs = ", ".join(names)
        raise ZooError(f"--classes: {data.info.name} is a regression task (outputs {outputs}); it has no classes")
    wanted = wanted_classes(args, names, data.info.name) if classified else None
    inputs, targets = data.split(args.split)
    dead_counts, top_sets, firsts, lines = Counter(), Counter(), Counter(), []
    with torch.no_grad():  # a block, not a global switch: main() also runs inside tests
        for index, member in enumerate(population.members()):
            result = activation_analysis(
                member, inputs, targets, names, layers=[args.layer], maximize=0, data=args.split
            )
            stats = result.layers[args.layer]
            dead_counts[len(stats.dead)] += 1
            line = f"  member {index:>3}: {len(stats.dead)} of {stats.units} units dead"
            if classified:
                preferred = []
                for unit in (unit for unit in range(stats.units) if unit not in stats.dead):
                    order = stats.class_profile[unit].argsort(descending=True)[: args.top].tolist()
                    top_sets[tuple(sorted(order))] += 1
                    firsts[order[0]] += 1
                    preferred.append(">".join(names[c] for c in order))
                line += f"; live units' top {args.top} classes, best first: {' '.join(preferred) or '-'}"
            lines.append(line)
    members = sum(dead_counts.values())
    print(f"{members} members, {args.layer} ({stats.units} units), judged on {len(inputs):,} {args.split} samples")
    print("members by dead units: " + ", ".join(f"{n} with {k} dead" for k, n in sorted(dead_counts.items())))
    if classified:
        live_units = sum(firsts.values())
        print(f"{live_units} live units; most preferred class (largest class-mean activation):")
        print("  " + ", ".join(f"class {label(c, names)}: {n} units" for c, n in firsts.most_common()))
        print(f"most common sets of top {args.top} classes:")
        print("  " + ", ".join(f"{{{class_set(s, names)}}}: {n} units" for s, n in top_sets.most_common(8)))
        if wanted:
            chosen = class_set(wanted, names)
            print(f"live units whose top {args.top} classes are {{{chosen}}}: {top_sets[wanted]} of {live_units}")
    else:
        live_units = sum(stats.units - k for k in dead_counts.elements())
        print(f"{live_units} live units; no class preferences: {data.info.name} is a regression task, without classes")
    if args.verbose:
        print("\n".join(lines))


def wanted_classes(args: argparse.Namespace, names: list[str], dataset: str) -> tuple[int, ...] | None:
    """``--classes`` as sorted class indices, after ``--top`` and it are checked against the data's classes.

    Classes are distinct indices (or names, as the data spells them: ``Dress``), one per ``--top``:
    a unit's top classes never match a set of another size.
    """
    if args.top > len(names):
        raise ZooError(f"--top {args.top}: {dataset} has {len(names)} classes; give 1 to {len(names)}")
    if not args.classes:
        return None
    accepted = f"{dataset}'s classes are 0 to {len(names) - 1}"
    if names != [str(index) for index in range(len(names))]:
        accepted += f" ({', '.join(f'{index} {name}' for index, name in enumerate(names))})"
    listed = " ".join(args.classes)
    indices = []
    for given in args.classes:
        if given in names:
            indices.append(names.index(given))
        elif given.isdigit() and int(given) < len(names):
            indices.append(int(given))
        else:
            raise ZooError(f"--classes {given}: no such class; {accepted}")
    if len(set(indices)) != len(indices):
        raise ZooError(f"--classes {listed}: a class is named twice; give {args.top} different ones")
    if len(indices) != args.top:
        raise ZooError(
            f"--classes {listed}: {len(indices)} classes, and --top is {args.top}; "
            f"give {args.top}, or --top {len(indices)}"
        )
    return tuple(sorted(indices))


def label(index: int, names: list[str]) -> str:
    """``3``, or ``3 (Dress)`` where the class has a name."""
    return names[index] if names[index] == str(index) else f"{index} ({names[index]})"


def class_set(indices: tuple[int, ...], names: list[str]) -> str:
    return ", ".join(label(index, names) for index in indices)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a population's checkpoint (--population N)")
    parser.add_argument("--layer", default="fc1", help="the hidden layer to look at (default fc1)")
    parser.add_argument(
        "--split",
        choices=["train", "val", "test"],
        default="train",
        help="the samples units are judged on (default train)",
    )
    parser.add_argument(
        "--top", type=count, default=3, help="how many preferred classes to name per unit, at least 1 (default 3)"
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        help="count the live units whose top --top classes are these (class indices, e.g. 0 3 6; as many as --top)",
    )
    parser.add_argument("--data-dir", default=None, help="folder of the data files (default $ZOO_DATA_DIR)")
    parser.add_argument("--verbose", action="store_true", help="one line per member")
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="population_units")


if __name__ == "__main__":
    main()
