"""The merged single-task networks study: losses per member, and roles over the continued epochs.

    python scripts/merge_study.py --sources A.ckpt B.ckpt --merged merged.ckpt \\
        --runs lightning_logs/continued/version_0 lightning_logs/scratch/version_0

Losses are each member's test MSE over both products (the merged network's training loss):
the sources' is the mean of their two single-task MSEs, which is the merged point's exactly.
Roles, specialization and signed orthogonality are the task-separation analysis's, read from
the runs' ``analysis/task_separation/member_*/epoch_*.json``; mean ± sd over members.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import scipy.stats
import torch

from zoo import ZooDataModule, load_model
from zoo.checkpoints import read_checkpoint
from zoo.errors import ZooError, exit_on_failure
from zoo.surgery.layout import outputs_of


def member_mse(checkpoint: str, data: ZooDataModule) -> torch.Tensor:
    """``(members, outputs)`` test MSE of every member of a population checkpoint, per output."""
    inputs, targets = data.split("test")
    outputs = outputs_of(load_model(checkpoint), inputs)
    return ((outputs - targets) ** 2).mean(1)


def spread(values: torch.Tensor) -> str:
    return f"{values.mean():.2e} ± {values.std():.1e}"


def run(args: argparse.Namespace) -> None:
    checked(args)
    with torch.no_grad():  # a block, not a global switch: main() also runs inside tests
        report(args)


def checked(args: argparse.Namespace) -> None:
    """Read every checkpoint the study needs before any is evaluated: a missing or corrupt one is named in one line.

    Their data is read by Lightning's loader, which ends a missing file in a bare ``FileNotFoundError`` (a
    traceback), and a missing run folder was only found after the sources had been evaluated.
    """
    wanted = [("--sources", path) for path in args.sources] + [("--merged", args.merged)]
    wanted += [("--runs", last(folder)) for folder in args.runs]
    wanted += [("--sources-continued", last(folder)) for folder in args.sources_continued or []]
    for option, path in wanted:
        try:
            read_checkpoint(path)
        except ZooError as error:
            raise ZooError(f"{option}: {error}") from None


def last(run_folder: str) -> str:
    return str(Path(run_folder) / "checkpoints" / "last.ckpt")


def report(args: argparse.Namespace) -> None:
    merged_data = ZooDataModule.load_from_checkpoint(args.merged)
    sources = [member_mse(path, ZooDataModule.load_from_checkpoint(path)) for path in args.sources]
    apart = torch.cat(sources, 1).mean(1)
    print(f"test MSE over both products, mean ± sd over {len(apart)} members")
    print(f"  sources (separate single-task networks)  {spread(apart)}")
    print(f"  merged point                              {spread(member_mse(args.merged, merged_data).mean(1))}")
    finals = {}
    for run_folder in args.runs:
        final = finals[run_folder] = member_mse(last(run_folder), merged_data).mean(1)
        lower = int((final < apart).sum())
        print(f"  {run_folder:<40}  {spread(final)}   lower than the sources' in {lower} of {len(final)} members")
    if args.sources_continued:
        folders = [last(path) for path in args.sources_continued]
        alone = torch.cat([member_mse(path, ZooDataModule.load_from_checkpoint(path)) for path in folders], 1)
        alone = alone.mean(1)
        print(f"  sources trained as long, apart            {spread(alone)}")
        for run_folder, final in finals.items():
            difference = (final - alone).double()
            half = scipy.stats.t.ppf(0.975, len(difference) - 1) * difference.std() / len(difference) ** 0.5
            print(
                f"  {run_folder} minus apart: {difference.mean():+.2e} (95% CI ± {half:.1e}, paired over members; "
                f"lower in {int((difference < 0).sum())} of {len(difference)})"
            )
    for run_folder in args.runs:
        print(f"\n{run_folder}: task separation over epochs (train samples), mean ± sd over members")
        print(f"  {'epoch':<6}" + "".join(f"{name:>22}" for name in COLUMNS))
        for epoch, rows in epochs(Path(run_folder)).items():
            cells = [torch.tensor([row[name] for row in rows]) for name in COLUMNS]
            print(f"  {epoch:<6}" + "".join(f"{c.mean():>14.3f} ± {c.std():.3f}" for c in cells))


COLUMNS = ("fc1 shared", "fc2 shared", "fc1 special.", "fc2 special.", "signed orth.")


def epochs(run_folder: Path) -> dict[str, list[dict[str, float]]]:
    """Per epoch label (``init``, ``001``, ...), one row of summary numbers per member."""
    table: dict[str, list[dict[str, float]]] = {}
    for path in sorted(run_folder.glob("analysis/task_separation/member_*/epoch_*.json")):
        result = json.loads(path.read_text())
        roles = result["roles"]
        table.setdefault(path.stem.removeprefix("epoch_"), []).append(
            {
                "fc1 shared": roles["fc1"]["shared_fraction"],
                "fc2 shared": roles["fc2"]["shared_fraction"],
                "fc1 special.": roles["fc1"]["specialization"],
                "fc2 special.": roles["fc2"]["specialization"],
                "signed orth.": result["signed_orthogonal_fraction"],
            }
        )
    return dict(sorted(table.items(), key=lambda item: (item[0] != "init", item[0])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sources", nargs=2, required=True, help="the two single-task populations' checkpoints")
    parser.add_argument("--merged", required=True, help="their merge (scripts/surgery.py merge)")
    parser.add_argument("--runs", nargs="+", required=True, help="run folders of the merged shape, trained further")
    parser.add_argument(
        "--sources-continued", nargs=2, default=None, help="run folders of the sources trained as many epochs more"
    )
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="merge_study")


if __name__ == "__main__":
    main()
