"""Run a sweep of zoo trials described in a YAML file, then summarize and plot it.

    python scripts/sweep.py sweeps/architectures.yaml             # run (or finish) the grid
    python scripts/sweep.py sweeps/architectures.yaml --jobs 2    # two trials at a time
    python scripts/sweep.py sweeps/architectures.yaml --output /tmp/arch
    python scripts/sweep.py sweeps/fc_search.yaml --search       # Optuna (TPE) study, SQLite storage
    python scripts/sweep.py sweeps/fc_search.yaml --search --storage postgresql://user:pw@host/zoo

Rerunning skips the trials already in <output>/results.csv; killing it loses
no finished row. Results: results.csv, summary.md, accuracy_vs_parameters.png,
accuracy_vs_train_time.png, and a run folder per trial (TensorBoard, HParams).
"""

from __future__ import annotations

import argparse
import sys

from zoo import ZooError
from zoo.sweep import load_sweep, run_search, run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="the sweep file, e.g. sweeps/architectures.yaml")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="trials run at the same time (each gets cores/jobs threads and one device; GPUs are taken in turn)",
    )
    parser.add_argument(
        "--output", default=None, help="folder for results (default: the file's output:, else sweeps/runs/<name>)"
    )
    parser.add_argument(
        "--search", action="store_true", help="run the file's search: block as an Optuna study instead of the grid"
    )
    parser.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL shared by several workers (default: SQLite in the output folder)",
    )
    args = parser.parse_args()
    try:
        if args.jobs < 1:
            raise ZooError(f"--jobs must be at least 1, got {args.jobs}")
        if args.search:
            rows = run_search(args.sweep, args.output, args.storage)
        else:
            rows = run_sweep(load_sweep(args.sweep, args.output), jobs=args.jobs)
    except ZooError as error:
        print(f"sweep: error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{len(rows)} rows; see results.csv, summary.md and the plots next to it")


if __name__ == "__main__":
    main()
