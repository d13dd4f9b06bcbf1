"""Run a sweep or a study of zoo trials described in a YAML file, then summarize and plot it.

    python scripts/sweep.py sweeps/architectures.yaml             # run (or finish) the grid
    python scripts/sweep.py sweeps/architectures.yaml --jobs 2    # two trials at a time
    python scripts/sweep.py sweeps/multimult_population.yaml      # 100 seeds as one batched model
    python scripts/sweep.py sweeps/fc_search.yaml --search        # Optuna (TPE) study, SQLite storage
    python scripts/sweep.py report sweeps/runs/architectures      # redraw summary and figures from the rows

Rerunning skips the trials that have rows; killing it loses no finished trial; two sweep
processes on one output folder share the trials. Results: results.csv, summary.md, the
figures, and a run folder per trial (TensorBoard, HParams, analysis JSON).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zoo.errors import ZooError, exit_on_failure
from zoo.sweep import read_rows, read_sweep, run_sweep, write_results, write_summary
from zoo.sweep.run import default_output
from zoo.sweep.search import run_search
from zoo.sweep.spec import Figures


def run(args: argparse.Namespace) -> None:
    if args.jobs < 1:
        raise ZooError(f"--jobs must be at least 1, got {args.jobs}")
    spec = read_sweep(args.sweep)
    output = Path(args.output) if args.output else default_output(args.sweep, spec)
    output.mkdir(parents=True, exist_ok=True)
    record = output / "sweep.yaml"
    if not record.exists():  # what the study ran, beside its rows (the report reads its figures: block)
        record.write_text(Path(args.sweep).read_text())
    if args.search:
        run_search(spec, output, args.storage)
    else:
        run_sweep(spec, output, args.jobs)
    print((output / "summary.md").read_text().split("\n## ")[0].strip())
    print(f"\nresults.csv, summary.md and the figures are in {output}")


def report(folder: str) -> None:
    output = Path(folder)
    rows = read_rows(output)
    if not rows:
        raise ZooError(f"{output}: holds no finished trial (no trials/*/rows.json); is it a sweep's output folder?")
    figures = read_sweep(output / "sweep.yaml").figures if (output / "sweep.yaml").is_file() else Figures()
    write_results(output, rows)
    written = write_summary(output, rows, figures)
    print(f"{len(rows)} rows → {', '.join(path.name for path in written)} in {output}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "report":
        parser = argparse.ArgumentParser(prog="sweep.py report", description="redraw a study's summary from its rows")
        parser.add_argument("folder", help="the sweep's output folder")
        args = parser.parse_args(sys.argv[2:])
        exit_on_failure(lambda: report(args.folder), program="sweep")
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sweep", help="the sweep file, e.g. sweeps/architectures.yaml")
    parser.add_argument("--jobs", type=int, default=1, help="trials at the same time (cores / jobs threads each)")
    parser.add_argument(
        "--output", default=None, help="results folder (default: the file's output:, else sweeps/runs/<name>)"
    )
    parser.add_argument("--search", action="store_true", help="run the file's search: block as an Optuna study")
    parser.add_argument("--storage", default=None, help="Optuna storage URL shared by several workers")
    args = parser.parse_args()
    exit_on_failure(lambda: run(args), program="sweep")


if __name__ == "__main__":
    main()
